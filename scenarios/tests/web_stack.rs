//! The web stack: one Cloud Run service of four containers sharing localhost. nginx takes every
//! request on 8000, the frontend serves the page and `/health`, and the backend answers
//! `/api/data` from Postgres, reached through the Cloud SQL Auth Proxy sidecar with the
//! password it reads from Secret Manager.

use serde_json::Value;

use scenarios::web_stack;

#[tokio::test]
async fn the_web_stack_serves_its_page_health_and_the_database_time() {
    let stack = web_stack().start().await.expect("the web stack starts");

    let page = stack.get("web", "/").await.expect("the page answers");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"],
        "text/html; charset=utf-8",
        "the frontend's page comes through nginx"
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("<h1>Web stack on Cloud Run</h1>"), "{html}");

    let health = stack.get("web", "/health").await.expect("health answers");
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.expect("JSON");
    assert_eq!(
        health["service"], "frontend",
        "nginx sends /health to the frontend"
    );

    let data = stack
        .get("web", "/api/data")
        .await
        .expect("the API answers");
    assert_eq!(data.status(), 200);
    let data: Value = data.json().await.expect("JSON");
    let version = data["version"].as_str().expect("a version");
    assert!(version.starts_with("PostgreSQL 15"), "{data}");

    let db = stack
        .postgres("db", "app", "app")
        .await
        .expect("the test reaches the same database from the host");
    let row = db
        .query_one(
            "SELECT version(), abs(extract(epoch FROM now() - $1::text::timestamptz))::float8",
            &[&data["now"].as_str().expect("a time")],
        )
        .await
        .expect("query");
    let (server_version, age): (String, f64) = (row.get(0), row.get(1));
    assert_eq!(version, server_version, "the backend asked the real server");
    assert!(age < 60.0, "now() is the server's current time: {data}");

    let logs = stack.logs("web");
    assert!(
        logs.contains("GET /api/data"),
        "nginx logged the request:\n{logs}"
    );
}

#[tokio::test]
async fn the_backend_answers_json_500_while_the_database_is_away_and_recovers() {
    let mut stack = web_stack().start().await.expect("the web stack starts");
    let data = stack.get("web", "/api/data").await.expect("answers");
    assert_eq!(data.status(), 200);

    stack
        .stop_sql_instance("db")
        .await
        .expect("the instance stops");
    let away = stack.get("web", "/api/data").await.expect("answers");
    assert_eq!(away.status(), 500);
    assert_eq!(away.headers()["content-type"], "application/json");
    let away: Value = away.json().await.expect("a JSON error");
    assert_eq!(away["error"], "database unavailable", "{away}");
    let page = stack.get("web", "/").await.expect("answers");
    assert_eq!(page.status(), 200, "the rest of the stack keeps serving");

    stack
        .start_sql_instance("db")
        .await
        .expect("the instance starts again");
    let back = stack.get("web", "/api/data").await.expect("answers");
    assert_eq!(
        back.status(),
        200,
        "the next request reaches the database again"
    );
    let logs = stack.logs("web");
    assert!(
        logs.contains("ERROR") && logs.contains("database error"),
        "the backend logged the outage:\n{logs}"
    );
}
