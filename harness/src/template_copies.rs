//! Fresh databases copied from a template ahead of time: a test that asks for one gets a copy
//! made earlier, and the next copy is made in the background while the test runs (the pool
//! that integresql and pgtestdb keep, for the same reason: `CREATE DATABASE ... TEMPLATE`
//! costs a few hundred milliseconds, a hand-out costs nothing).

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::error::HarnessError;
use crate::stack::nonce;

/// How many copies are kept ready, or being made, per template.
const READY_COPIES: usize = 2;

/// Copies of one template database, each owned by the user whose connection made it.
#[derive(Debug)]
pub(crate) struct TemplateCopies {
    ready: Mutex<mpsc::Receiver<Result<String, HarnessError>>>,
    maker: JoinHandle<()>,
}

impl TemplateCopies {
    /// Starts copying `template` over `client` (connected to another database of the same
    /// server) until [`READY_COPIES`] wait to be taken; the first failure ends the copying and
    /// is handed to whoever takes next.
    pub(crate) fn start(client: tokio_postgres::Client, template: &str, what: String) -> Self {
        let (made, ready) = mpsc::channel(READY_COPIES);
        let source = quote_identifier(template);
        let template = template.to_string();
        let maker = tokio::spawn(async move {
            while let Ok(slot) = made.reserve().await {
                let name = format!("{template}_{}", nonce());
                let copied = client
                    .batch_execute(&format!(
                        "CREATE DATABASE {} TEMPLATE {source}",
                        quote_identifier(&name)
                    ))
                    .await
                    .map(|()| name)
                    .map_err(HarnessError::postgres(what.clone()));
                let failed = copied.is_err();
                slot.send(copied);
                if failed {
                    return;
                }
            }
        });
        TemplateCopies {
            ready: Mutex::new(ready),
            maker,
        }
    }

    /// The name of a copy nobody has had yet, waiting for the one being made if none is
    /// ready; `None` once the copying has ended (after handing out its failure).
    pub(crate) async fn take(&self) -> Option<Result<String, HarnessError>> {
        self.ready.lock().await.recv().await
    }
}

impl Drop for TemplateCopies {
    /// Stops copying before the stack removes the instance under it.
    fn drop(&mut self) {
        self.maker.abort();
    }
}

/// A Postgres identifier in double quotes, any quote in it doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
