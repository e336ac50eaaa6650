//! One batch of ban and allow orders sent to the node (`Command::Issue`),
//! shared by `import` and `import-seed`: the node's answer, one item per
//! order, or an error that says what was imported before this batch.

use std::path::Path;

use anyhow::Context as _;

use crate::control::{self, Command, IssuedView, OrderSpec, Response};

/// Sends `orders` and returns one item per order; `done` says what earlier
/// batches imported, for the error.
pub async fn send(
    socket: &Path,
    orders: Vec<OrderSpec>,
    done: impl Fn() -> String,
) -> anyhow::Result<Vec<IssuedView>> {
    let count = orders.len();
    let response = control::call(socket, Command::Issue { orders }).await.with_context(|| {
        format!("cannot send a batch of {count} orders to the node; {}", done())
    })?;
    match response {
        Response::Issued(items) if items.len() == count => Ok(items),
        Response::Error { message } => {
            anyhow::bail!("the node refused a batch: {message}; {}", done())
        }
        other => anyhow::bail!("the node answered {} to a batch; {}", other.name(), done()),
    }
}
