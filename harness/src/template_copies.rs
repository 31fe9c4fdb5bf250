//! Fresh databases copied from a template ahead of time: a test that asks for one gets a copy
//! made earlier, and the next copy is made in the background while the test runs (the pool
//! that integresql and pgtestdb keep, for the same reason: `CREATE DATABASE ... TEMPLATE`
//! costs a few hundred milliseconds, a hand-out costs nothing).
//!
//! Copies are made from a snapshot of the template taken once, which nobody may connect to:
//! Postgres holds back connections to a database while it is being copied, and refuses to
//! copy one that has connections, so copying the template itself would stall, or fail for,
//! the apps that use it.

use emulator::controller::quote_identifier;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::error::HarnessError;
use crate::stack::nonce;

/// How many copies are kept ready, or being made, per template.
const READY_COPIES: usize = 4;

/// Copies of one template database, each owned by the user whose connection made it.
#[derive(Debug)]
pub(crate) struct TemplateCopies {
    ready: Mutex<mpsc::Receiver<Result<String, HarnessError>>>,
    maker: JoinHandle<()>,
}

impl TemplateCopies {
    /// Snapshots `template` over `client` (connected to another database of the same server),
    /// then copies the snapshot until [`READY_COPIES`] wait to be taken; the first failure ends
    /// the copying and is handed to whoever takes next.
    pub(crate) fn start(client: tokio_postgres::Client, template: &str, what: String) -> Self {
        let (made, ready) = mpsc::channel(READY_COPIES);
        let template = template.to_string();
        let maker = tokio::spawn(async move {
            let snapshot = derived_name(&template, "snapshot_");
            let quoted = quote_identifier(&snapshot);
            for statement in [
                format!(
                    "CREATE DATABASE {quoted} TEMPLATE {}",
                    quote_identifier(&template)
                ),
                format!("ALTER DATABASE {quoted} ALLOW_CONNECTIONS false"),
            ] {
                if let Err(error) = client.batch_execute(&statement).await {
                    let _ = made.send(Err(HarnessError::postgres(what)(error))).await;
                    return;
                }
            }
            while let Ok(slot) = made.reserve().await {
                let name = derived_name(&template, "");
                let copied = client
                    .batch_execute(&format!(
                        "CREATE DATABASE {} TEMPLATE {}",
                        quote_identifier(&name),
                        quoted
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

/// `TEMPLATE_TAGNONCE`, the template's name shortened as needed to stay within the 63 bytes
/// of a Postgres identifier (a longer one would be cut by the server, not by the caller).
fn derived_name(template: &str, tag: &str) -> String {
    const MAX_IDENTIFIER: usize = 63;
    let suffix = format!("_{tag}{}", nonce());
    let mut end = template.len().min(MAX_IDENTIFIER - suffix.len());
    while !template.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &template[..end])
}

#[cfg(test)]
mod tests {
    use super::derived_name;

    #[test]
    fn a_derived_name_fits_a_postgres_identifier() {
        let short = derived_name("app", "");
        assert!(short.starts_with("app_") && short.len() == 14, "{short}");

        let template = "ä".repeat(40);
        let long = derived_name(&template, "snapshot_");
        assert!(long.len() <= 63, "{} bytes: {long}", long.len());
        let (kept, nonce) = long.split_once("_snapshot_").expect("the tag is kept");
        assert!(!kept.is_empty() && template.starts_with(kept), "{long}");
        assert!(
            nonce.len() == 10 && nonce.bytes().all(|b| b.is_ascii_lowercase()),
            "{long}"
        );
    }
}
