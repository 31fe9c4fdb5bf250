//! Long-running operations. Every change the helper APIs make completes at once, so an operation
//! is born done; it is kept so that clients that poll it anyway find it.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use serde_json::Value;

/// How many finished operations are remembered for polling.
const KEPT: usize = 4096;

/// A finished operation: its name and the resource it produced (as the wire shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: String,
    /// `metadata` of the operation, already in wire form.
    pub metadata: Option<Value>,
    /// `response` of the operation, already in wire form.
    pub response: Value,
}

/// The operations of this process.
#[derive(Debug, Default)]
pub struct Operations {
    inner: Mutex<(HashMap<String, Operation>, VecDeque<String>)>,
}

impl Operations {
    /// Records a finished operation named `name`.
    pub fn finish(&self, name: String, metadata: Option<Value>, response: Value) -> Operation {
        let operation = Operation {
            name: name.clone(),
            metadata,
            response,
        };
        let mut inner = self.inner.lock();
        let (by_name, order) = &mut *inner;
        by_name.insert(name.clone(), operation.clone());
        order.push_back(name);
        while order.len() > KEPT {
            if let Some(old) = order.pop_front() {
                by_name.remove(&old);
            }
        }
        operation
    }

    /// The operation of that name, if it is still remembered.
    pub fn get(&self, name: &str) -> Option<Operation> {
        self.inner.lock().0.get(name).cloned()
    }
}

/// A fresh operation id, unique within the process.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
