//! A fresh database per test in one Cloud SQL instance: each is a copy of a template holding
//! the fixtures as they were when the stack started, nobody else's writes show in it, an app
//! connected to the template does not get in the way, and a template that cannot be copied
//! says so.

use harness::{HarnessError, SqlInstance, Stack};

const FIXTURE: &str = "CREATE TABLE items (name text PRIMARY KEY);
                       INSERT INTO items VALUES ('apple'), ('pear');";

async fn item_names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT name FROM items ORDER BY name", &[])
        .await
        .expect("items are readable")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_test_gets_its_own_copy_of_the_template_with_the_fixtures() {
    let stack = Stack::new()
        .sql_instance(
            SqlInstance::postgres("db")
                .database("app")
                .user("app", "app-pw")
                .fixture_sql(FIXTURE)
                .template_database("app"),
        )
        .start()
        .await
        .expect("the stack starts");

    let app = stack.postgres("db", "app", "app").await.expect("connects");
    app.execute("INSERT INTO items VALUES ('written by the app')", &[])
        .await
        .expect("the app writes to the template while copies are made");

    let mut copies = Vec::new();
    for test in 0..3 {
        let name = stack
            .fresh_database("db", "app", "app")
            .await
            .expect("a fresh database");
        let client = stack.postgres("db", &name, "app").await.expect("connects");
        assert_eq!(item_names(&client).await, ["apple", "pear"], "copy {name}");
        client
            .execute(
                "INSERT INTO items VALUES ($1)",
                &[&format!("written by test {test}")],
            )
            .await
            .expect("a test writes to its own copy");
        copies.push((name, client));
    }

    let names: Vec<&String> = copies.iter().map(|(name, _)| name).collect();
    assert!(
        names[0] != names[1] && names[1] != names[2] && names[0] != names[2],
        "{names:?}"
    );
    for (test, (_, client)) in copies.iter().enumerate() {
        assert_eq!(
            item_names(client).await,
            ["apple", "pear", &format!("written by test {test}")],
        );
    }
    assert_eq!(
        item_names(&app).await,
        ["apple", "pear", "written by the app"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undeclared_template_is_copied_on_first_use_and_a_missing_one_is_named() {
    let stack = Stack::new()
        .sql_instance(
            SqlInstance::postgres("db")
                .database("app")
                .user("app", "app-pw")
                .fixture_sql(FIXTURE),
        )
        .start()
        .await
        .expect("the stack starts");

    let name = stack
        .fresh_database("db", "app", "app")
        .await
        .expect("a fresh database");
    let client = stack.postgres("db", &name, "app").await.expect("connects");
    assert_eq!(item_names(&client).await, ["apple", "pear"]);

    for _ in 0..2 {
        let error = stack
            .fresh_database("db", "no_such_db", "app")
            .await
            .expect_err("there is nothing to copy");
        assert!(matches!(error, HarnessError::Postgres { .. }), "{error:?}");
        let shown = format!("{error}: {:?}", std::error::Error::source(&error));
        assert!(shown.contains("no_such_db"), "{shown}");
    }
}
