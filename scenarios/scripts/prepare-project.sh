#!/usr/bin/env bash
# The first half of a typical Cloud Run deploy script: everything it does before `gcloud run
# deploy`. It is written for real Google Cloud and runs unmodified against the emulator once
# `eval "$(cloudrun-emulator env)"` has pointed gcloud at it.
set -euo pipefail

PROJECT_ID="${PROJECT_ID:-$(gcloud config get-value project)}"
REGION="${REGION:-us-central1}"
REPO="${REPO:-containers}"

gcloud config set compute/region "$REGION"
gcloud services enable \
  run.googleapis.com \
  secretmanager.googleapis.com \
  sqladmin.googleapis.com \
  artifactregistry.googleapis.com

if ! gcloud artifacts repositories describe "$REPO" --location="$REGION" >/dev/null 2>&1; then
  gcloud artifacts repositories create "$REPO" \
    --repository-format=docker --location="$REGION" --description="Service images"
fi

RUNTIME_SA="backend@${PROJECT_ID}.iam.gserviceaccount.com"
for name in db-password stripe-api-key; do
  if ! gcloud secrets describe "$name" >/dev/null 2>&1; then
    printf '%s' "initial-${name}" | gcloud secrets create "$name" \
      --replication-policy=automatic --data-file=-
  fi
  gcloud secrets add-iam-policy-binding "$name" \
    --member="serviceAccount:${RUNTIME_SA}" \
    --role=roles/secretmanager.secretAccessor >/dev/null
done

printf 'rotated-password' | gcloud secrets versions add db-password --data-file=-
echo "IMAGE_BASE=${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPO}"
