//! Microservices: four Cloud Run services of one shop. `frontend` is public; `auth`, `product`
//! and `order` are private, callable only by the service accounts granted `roles/run.invoker`.
//! A customer registers, logs in (a JWT signed with a key from Secret Manager), reads the
//! catalogue (Redis cache-aside over Cloud SQL) and orders; the order service reserves stock at
//! the product service's URL with its ID token, stores the order and publishes an event to
//! Pub/Sub. Concurrent orders for the last items never oversell.

use std::time::{Duration, Instant};

use harness::{HarnessError, RunningStack};
use reqwest::StatusCode;
use serde_json::{Value, json};

use scenarios::{micro_service, micro_stack};

/// `NAME@demo-proj.iam.gserviceaccount.com`, the account a service of the stack runs as.
fn account(name: &str) -> String {
    format!("serviceAccount:{name}@demo-proj.iam.gserviceaccount.com")
}

/// Grants `roles/run.invoker` on `service` to `members`, as
/// `gcloud run services add-iam-policy-binding` does (through the Cloud Run IAM API).
async fn grant_invoker(stack: &RunningStack, service: &str, members: &[String]) {
    let url = format!(
        "{}/v1/projects/demo-proj/locations/us-central1/services/{service}:setIamPolicy",
        stack.emulator().url()
    );
    let body = json!({"policy": {"bindings": [{"role": "roles/run.invoker", "members": members}]}});
    let answer = stack
        .http()
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("setIamPolicy answers");
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().await.unwrap_or_default()
    );
}

/// The whole shop: auth and product first, then order given the product URL, then the public
/// frontend given every URL; each backend's invokers granted as a team would.
async fn shop() -> Result<RunningStack, HarnessError> {
    let mut stack = micro_stack().start().await?;
    let product_url = stack.url("product")?;
    stack
        .deploy(micro_service("order").var("PRODUCT_URL", &product_url))
        .await?;
    stack
        .deploy(
            micro_service("frontend")
                .var("AUTH_URL", stack.url("auth")?)
                .var("PRODUCT_URL", &product_url)
                .var("ORDER_URL", stack.url("order")?)
                .allow_unauthenticated(),
        )
        .await?;
    grant_invoker(&stack, "auth", &[account("frontend")]).await;
    grant_invoker(&stack, "product", &[account("frontend"), account("order")]).await;
    grant_invoker(&stack, "order", &[account("frontend")]).await;
    Ok(stack)
}

/// `POST {frontend}/api{path}` with a JSON body, optionally as a logged-in customer.
async fn post(
    stack: &RunningStack,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let url = format!("{}/api{path}", stack.url("frontend").expect("deployed"));
    let mut request = stack.http().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("the frontend answers");
    let status = answer.status();
    (status, answer.json().await.expect("a JSON answer"))
}

/// `GET {frontend}/api{path}`: the status, the `X-Cache` header and the JSON body.
async fn get(
    stack: &RunningStack,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let url = format!("{}/api{path}", stack.url("frontend").expect("deployed"));
    let mut request = stack.http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("the frontend answers");
    let status = answer.status();
    let cache = answer
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, cache, answer.json().await.expect("a JSON answer"))
}

/// The stock of a product in the catalogue as the frontend shows it.
async fn stock(stack: &RunningStack, product: i64) -> i64 {
    let (status, _, products) = get(stack, "/products", None).await;
    assert_eq!(status, 200, "{products}");
    products
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == product))
        .and_then(|p| p["stock"].as_i64())
        .unwrap_or_else(|| panic!("product {product} is listed: {products}"))
}

/// Pulls from a Pub/Sub subscription until `count` messages arrived (or 20 s passed).
async fn pull(stack: &RunningStack, subscription: &str, count: usize) -> Vec<Value> {
    let host = stack.pubsub_host().expect("the stack has Pub/Sub");
    let url = format!("http://{host}/v1/projects/demo-proj/subscriptions/{subscription}:pull");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while events.len() < count && Instant::now() < deadline {
        let answer: Value = stack
            .http()
            .post(&url)
            .json(&json!({"maxMessages": 10, "returnImmediately": false}))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("pull answers")
            .json()
            .await
            .expect("JSON");
        for received in answer["receivedMessages"].as_array().into_iter().flatten() {
            let data = received["message"]["data"].as_str().expect("data");
            let decoded = base64_decode(data);
            events.push(serde_json::from_slice(&decoded).expect("a JSON event"));
        }
    }
    events
}

/// Standard base64 (Pub/Sub's `data`), decoded without another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut held = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET
            .iter()
            .position(|c| *c == byte)
            .expect("a base64 character");
        bits = (bits << 6) | u32::try_from(value).expect("under 64");
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push(u8::try_from((bits >> held) & 0xff).expect("a byte"));
        }
    }
    out
}

#[tokio::test]
async fn a_customer_registers_logs_in_browses_and_orders_and_the_last_items_are_never_oversold() {
    let began = Instant::now();
    let stack = shop().await.expect("the shop starts");
    let pubsub = stack.pubsub_host().expect("Pub/Sub");
    let subscription = stack
        .http()
        .put(format!(
            "http://{pubsub}/v1/projects/demo-proj/subscriptions/order-audit"
        ))
        .json(&json!({"topic": "projects/demo-proj/topics/orders"}))
        .send()
        .await
        .expect("subscription answers");
    assert_eq!(
        subscription.status(),
        200,
        "the order service created its topic when it started"
    );

    // Register, log in, and see the profile only with the token.
    let customer = json!({"email": "ada@example.com", "password": "correct horse"});
    let (status, user) = post(&stack, "/auth/register", customer.clone(), None).await;
    assert_eq!(status, 201, "{user}");
    let (status, again) = post(&stack, "/auth/register", customer.clone(), None).await;
    assert_eq!(status, 409, "an email registers once: {again}");
    let (status, wrong) = post(
        &stack,
        "/auth/login",
        json!({"email": "ada@example.com", "password": "wrong"}),
        None,
    )
    .await;
    assert_eq!(status, 401, "{wrong}");
    let (status, login) = post(&stack, "/auth/login", customer, None).await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().expect("a JWT");
    let (status, _, profile) = get(&stack, "/auth/profile", Some(token)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["email"], "ada@example.com");
    assert_eq!(profile["id"], user["id"]);
    let (status, _, refused) = get(&stack, "/auth/profile", None).await;
    assert_eq!(status, 401, "no token, no profile: {refused}");
    let (status, _, forged) = get(&stack, "/auth/profile", Some("e30.e30.forged")).await;
    assert_eq!(status, 401, "{forged}");

    let db = stack
        .postgres("shop", "shop", "shop")
        .await
        .expect("the test reaches the shop's database");
    let hash: String = db
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'ada@example.com'",
            &[],
        )
        .await
        .expect("the user is stored")
        .get(0);
    assert!(
        hash.starts_with("$2b$"),
        "a bcrypt hash, not the password: {hash}"
    );

    // The catalogue: a miss fills the cache, the next read hits it.
    let (status, cache, products) = get(&stack, "/products", None).await;
    assert_eq!(status, 200, "{products}");
    assert_eq!(cache.as_deref(), Some("MISS"));
    assert_eq!(products.as_array().map(Vec::len), Some(3), "{products}");
    let (_, cache, _) = get(&stack, "/products", None).await;
    assert_eq!(cache.as_deref(), Some("HIT"));

    // An order: stock reserved at the product service, order stored, event published.
    let (status, order) = post(
        &stack,
        "/orders",
        json!({"product_id": 2, "quantity": 3}),
        Some(token),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["stock_left"], 17);
    let (_, cache, _) = get(&stack, "/products", None).await;
    assert_eq!(
        cache.as_deref(),
        Some("MISS"),
        "the reservation dropped the cache"
    );
    assert_eq!(stock(&stack, 2).await, 17);
    let stored = db
        .query_one(
            "SELECT product_id, quantity, total_cents FROM orders WHERE id = $1",
            &[&i32::try_from(order["order_id"].as_i64().expect("an id")).expect("small")],
        )
        .await
        .expect("the order is stored");
    let stored: (i32, i32, i32) = (stored.get(0), stored.get(1), stored.get(2));
    assert_eq!(stored, (2, 3, 3 * 3500));
    let events = pull(&stack, "order-audit", 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["order_id"], order["order_id"]);
    assert_eq!(events[0]["quantity"], 3);

    // The backends are private: no token, a stranger's token, or the right token for another
    // service's URL are refused; the accounts granted the invoker role get through.
    let product_url = stack.url("product").expect("deployed");
    let anonymous = stack
        .http()
        .get(format!("{product_url}/products"))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 403);
    let stranger = stack
        .emulator()
        .identity_token("stranger@demo-proj.iam.gserviceaccount.com", &product_url)
        .expect("a token");
    let refused = stack
        .http()
        .get(format!("{product_url}/products"))
        .bearer_auth(&stranger)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        refused.status(),
        403,
        "a valid token without the invoker role"
    );
    let order_account = "order@demo-proj.iam.gserviceaccount.com";
    let order_token = stack
        .emulator()
        .identity_token(order_account, &product_url)
        .expect("a token");
    let admitted = stack
        .http()
        .get(format!("{product_url}/products"))
        .bearer_auth(&order_token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        admitted.status(),
        200,
        "the order service's account may call product"
    );
    let auth_url = stack.url("auth").expect("deployed");
    let order_as_auth = stack
        .emulator()
        .identity_token(order_account, &auth_url)
        .expect("a token");
    let not_granted = stack
        .http()
        .get(format!("{auth_url}/health"))
        .bearer_auth(&order_as_auth)
        .send()
        .await
        .expect("answers");
    assert_eq!(not_granted.status(), 403, "order was not granted auth");

    // Eight customers order the last five espresso cups at once: exactly five succeed.
    const ORDERS: usize = 8;
    let available = stock(&stack, 1).await;
    assert_eq!(available, 5);
    let mut rush = tokio::task::JoinSet::new();
    let url = format!("{}/api/orders", stack.url("frontend").expect("deployed"));
    for _ in 0..ORDERS {
        let (http, url, token) = (stack.http().clone(), url.clone(), token.to_string());
        rush.spawn(async move {
            let answer = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"product_id": 1, "quantity": 1}))
                .send()
                .await
                .expect("the frontend answers");
            let status = answer.status();
            (status, answer.json::<Value>().await.expect("JSON"))
        });
    }
    let outcomes = rush.join_all().await;
    let sold = outcomes.iter().filter(|(s, _)| *s == 201).count();
    let short = outcomes.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((sold, short), (5, ORDERS - 5), "{outcomes:?}");
    assert_eq!(stock(&stack, 1).await, 0, "sold out, never negative");
    let rows: i64 = db
        .query_one("SELECT count(*) FROM orders WHERE product_id = 1", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 5, "one stored order per sale");
    assert_eq!(
        pull(&stack, "order-audit", 5).await.len(),
        5,
        "one event per sale"
    );
    eprintln!(
        "microservices story took {:?} ({:?})",
        began.elapsed(),
        stack.timings()
    );
}
