//! A group's answer with its members streamed in after it, a page at a
//! time as the upstream lists them: `{…the group…, "members": [ … ]}` in
//! the memory of a few pages, however large the group.
//!
//! The status and headers leave first, so an upstream failure midway can
//! no longer become an error answer: the body is cut short instead, and
//! the client, seeing no complete JSON, retries (logged here).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use serde_json::Value;
use tokio::sync::mpsc::Receiver;

use super::response::ScimResponse;
use crate::provision::ProvisionError;

/// `single` (the group without members) with `pages` of members added.
pub fn with_members(
    single: ScimResponse,
    pages: Receiver<Result<Vec<Value>, ProvisionError>>,
    base: std::sync::Arc<str>,
) -> Response {
    let mut head = match &single.body {
        Some(group) => crate::scim::json::to_vec(group),
        None => return single.into_response(),
    };
    // `{…}` → `{…,"members":[`.
    if head.pop() != Some(b'}') {
        return single.into_response();
    }
    if head.len() > 1 {
        head.push(b',');
    }
    head.extend_from_slice(br#""members":["#);
    let mut response = ScimResponse {
        body: None,
        ..single
    }
    .into_response();
    *response.body_mut() = Body::new(MembersBody {
        head: Some(Bytes::from(head)),
        pages,
        base,
        first: true,
        done: false,
    });
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(super::response::SCIM_CONTENT_TYPE),
    );
    response
}

struct MembersBody {
    head: Option<Bytes>,
    pages: Receiver<Result<Vec<Value>, ProvisionError>>,
    base: std::sync::Arc<str>,
    /// No member written yet (no comma before the next).
    first: bool,
    done: bool,
}

impl http_body::Body for MembersBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.pages.poll_recv(context) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"]}")))))
            }
            Poll::Ready(Some(Ok(members))) => {
                let mut chunk = Vec::new();
                for mut member in members {
                    super::resources::add_user_ref(&mut member, &self.base);
                    if !std::mem::take(&mut self.first) {
                        chunk.push(b',');
                    }
                    crate::scim::json::write_value(&mut chunk, &member);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Poll::Ready(Some(Err(error))) => {
                self.done = true;
                tracing::warn!(%error, "a group's member list failed midway; its answer is cut short");
                Poll::Ready(Some(Err(std::io::Error::other(error.to_string()))))
            }
        }
    }
}
