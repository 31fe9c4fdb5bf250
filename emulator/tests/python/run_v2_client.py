#!/usr/bin/env python3
"""Google's Python client for Cloud Run Admin API v2 (REST transport) against the emulator.

Usage: run_v2_client.py EMULATOR_URL [PROJECT] [V1_SERVICE]

Creates a service (first with validate_only, which stores nothing), waits for its operation,
reads, lists, opens it to allUsers, calls it, updates it (a second revision; a validate_only
update changes nothing), reads a service created through v1 (V1_SERVICE), deletes (a
validate_only delete keeps it).
Before deleting it prints `PAUSE <service uri>` and waits for a line on stdin, so the caller can
look at the service through v1 meanwhile. Exits non-zero on the first mismatch.
"""

import sys
import time
import urllib.error
import urllib.request

try:
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import run_v2
    from google.cloud.run_v2.services.revisions.transports.rest import RevisionsRestTransport
    from google.cloud.run_v2.services.services.transports.rest import ServicesRestTransport
    from google.iam.v1 import iam_policy_pb2, policy_pb2
except ImportError as error:
    print(
        f"google-cloud-run is not installed ({error}): run "
        "`python3 -m pip install google-cloud-run`",
        file=sys.stderr,
    )
    sys.exit(2)

IMAGE = "cloudrun-emulator/testapp:1"
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED


def check(ok, what):
    if not ok:
        print(f"MISMATCH: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def http_get(url, deadline_seconds=60):
    """GETs url until it stops answering 403 (the IAM change reaches the ingress) or time runs out."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code != 403 or time.monotonic() > deadline:
                return error.code, error.read().decode()
        time.sleep(0.2)


def main():
    url = sys.argv[1]
    project = sys.argv[2] if len(sys.argv) > 2 else "demo-proj"
    v1_service = sys.argv[3] if len(sys.argv) > 3 else None
    host = url.split("://", 1)[-1].rstrip("/")
    credentials = AnonymousCredentials()
    services = run_v2.ServicesClient(
        transport=ServicesRestTransport(host=host, url_scheme="http", credentials=credentials)
    )
    revisions = run_v2.RevisionsClient(
        transport=RevisionsRestTransport(host=host, url_scheme="http", credentials=credentials)
    )
    parent = f"projects/{project}/locations/us-central1"
    name = f"{parent}/services/v2svc"

    # Cloud Run's rule: v2 refuses annotations in the namespaces it reserves.
    try:
        services.create_service(
            parent=parent,
            service_id="refused",
            service=run_v2.Service(
                template=run_v2.RevisionTemplate(
                    annotations={"run.googleapis.com/cpu-throttling": "false"},
                    containers=[run_v2.Container(image=IMAGE)],
                )
            ),
        )
        check(False, "a reserved annotation is refused")
    except exceptions.BadRequest as error:
        check("run.googleapis.com/cpu-throttling" in str(error), "a reserved annotation is refused")

    wanted = run_v2.Service(
        labels={"app": "shop"},
        template=run_v2.RevisionTemplate(
            containers=[
                run_v2.Container(image=IMAGE, env=[run_v2.EnvVar(name="MODE", value="v2")])
            ]
        ),
    )

    # validate_only: the operation answers with the service as it would be; nothing is stored.
    validated = services.create_service(
        request=run_v2.CreateServiceRequest(
            parent=parent, service_id="v2svc", service=wanted, validate_only=True
        )
    ).result(timeout=30)
    check(validated.name == name, f"validate_only create answers {validated.name}")
    try:
        services.get_service(name=name)
        check(False, "validate_only creates nothing")
    except exceptions.NotFound:
        check(True, "validate_only creates nothing")

    operation = services.create_service(parent=parent, service_id="v2svc", service=wanted)
    print(f"operation: {operation.operation.name}", flush=True)
    created = operation.result(timeout=120)
    check(created.name == name, f"created {created.name}")
    check(created.uri.startswith("http://"), f"uri {created.uri}")
    check(created.terminal_condition.state == SUCCEEDED, "terminal condition SUCCEEDED")
    check(created.latest_ready_revision.startswith(f"{name}/revisions/v2svc-00001-"),
          f"latest ready revision {created.latest_ready_revision}")
    check(created.generation == 1, "generation 1")

    got = services.get_service(name=name)
    check(got.labels.get("app") == "shop", "labels read back")
    check(got.template.containers[0].env[0].value == "v2", "env read back")
    check(got.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL, "ingress ALL")

    listed = [s.name for s in services.list_services(parent=parent)]
    check(name in listed, f"list contains it: {listed}")

    policy = services.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(
            resource=name,
            policy=policy_pb2.Policy(
                bindings=[policy_pb2.Binding(role="roles/run.invoker", members=["allUsers"])]
            ),
        )
    )
    check(any(b.role == "roles/run.invoker" for b in policy.bindings), "policy set")
    read_policy = services.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=name))
    check(list(read_policy.bindings[0].members) == ["allUsers"], "policy read back")

    status, body = http_get(created.uri + "/env/MODE")
    check((status, body.strip()) == (200, "v2"), f"GET /env/MODE -> {status} {body!r}")

    if v1_service:
        v1 = services.get_service(name=f"{parent}/services/{v1_service}")
        check(v1.template.containers[0].image == IMAGE, "v2 reads the service v1 created")
        check(v1.terminal_condition.state == SUCCEEDED, "the v1 service is ready through v2")

    current = services.get_service(name=name)
    current.template.containers[0].env[0].value = "v2-updated"
    updated = services.update_service(service=current).result(timeout=120)
    check(updated.generation == 2, f"generation 2 after update: {updated.generation}")
    check(updated.latest_ready_revision.startswith(f"{name}/revisions/v2svc-00002-"),
          f"second revision {updated.latest_ready_revision}")
    status, body = http_get(updated.uri + "/env/MODE")
    check((status, body.strip()) == (200, "v2-updated"), f"after update GET -> {status} {body!r}")

    dry = services.get_service(name=name)
    dry.template.containers[0].env[0].value = "v2-dry"
    validated = services.update_service(
        request=run_v2.UpdateServiceRequest(service=dry, validate_only=True)
    ).result(timeout=30)
    check(validated.template.containers[0].env[0].value == "v2-dry",
          "validate_only update answers the service as it would be")
    kept = services.get_service(name=name)
    check(kept.template.containers[0].env[0].value == "v2-updated"
          and kept.generation == 2, "validate_only update changes nothing")

    listed_revisions = list(revisions.list_revisions(parent=name))
    check(len(listed_revisions) == 2, f"two revisions: {[r.name for r in listed_revisions]}")
    first = revisions.get_revision(name=listed_revisions[-1].name)
    check(first.service == name, "a revision names its service")
    check(first.containers[0].env[0].value == "v2", "the first revision keeps its env")

    failing = services.create_service(
        parent=parent,
        service_id="v2missing",
        service=run_v2.Service(
            template=run_v2.RevisionTemplate(
                containers=[run_v2.Container(image="cloudrun-emulator/no-such-image:1")]
            )
        ),
    )
    try:
        failing.result(timeout=120)
        check(False, "a missing image fails the operation")
    except exceptions.GoogleAPICallError as error:
        check("no-such-image" in str(error), f"a missing image fails the operation: {error}")
    services.delete_service(name=f"{parent}/services/v2missing").result(timeout=60)

    print(f"PAUSE {updated.uri}", flush=True)
    sys.stdin.readline()

    services.delete_service(
        request=run_v2.DeleteServiceRequest(name=name, validate_only=True)
    ).result(timeout=30)
    check(services.get_service(name=name).name == name, "validate_only delete keeps it")

    deleted = services.delete_service(name=name).result(timeout=60)
    check(deleted.name == name, "delete returns the service")
    try:
        services.get_service(name=name)
        check(False, "gone after delete")
    except exceptions.NotFound:
        check(True, "gone after delete")
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
