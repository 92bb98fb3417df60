//! `/graphql/ws`: async-graphql's graphql-transport-ws state machine, with the parts of the
//! protocol it leaves out added around it (as a guard on the messages coming in and a rewrite of
//! the frames going out):
//!
//! - no `connection_init` within `ws_init_timeout_seconds`: close 4408;
//! - `subscribe` before `connection_init`: close 4401 (async-graphql would close with 1011);
//! - `subscribe` with the id of a running subscription: close 4409 (async-graphql would silently
//!   replace the running one);
//! - a refused `connection_init`: close 4403 (async-graphql: 1002), also when the caller holds
//!   `ws_max_connections_per_token` connections already;
//! - a message that is not one of the protocol: close 4400 (async-graphql: 1002);
//! - every close reason at most 123 bytes, as a close frame allows.
//!
//! And the bounds that keep one connection from costing the server without limit:
//!
//! - at most `ws_max_subscriptions` running subscriptions: a further `subscribe` is answered with
//!   an `error` message (BAD_USER_INPUT) for its id and the connection stays open;
//! - a bounded outgoing queue: while it is full nothing more is produced for the connection, so
//!   its subscriptions' events wait in the process's event buffer and coalesce (progress runs to
//!   the latest; past the buffer, the current state); a queue that stays full for
//!   `ws_slow_client_seconds` (the client does not read) closes the connection with 4503;
//! - small socket buffers (a few KiB instead of tungstenite's 128 KiB each way).
//!
//! What async-graphql already does is left to it: 4429 for a second `connection_init`, pings and
//! pongs, `complete` in both directions.
use std::{
    collections::HashSet,
    future::ready,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::http::{ClientMessage, WebSocketProtocols, WsMessage};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket},
        WebSocketUpgrade,
    },
    response::Response,
};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::FORBIDDEN;
use crate::{app::AppState, error::AppError, graphql::OutgoingPayloads};

/// The longest close reason: a control frame carries at most 125 bytes, 2 of them the code.
pub const MAX_CLOSE_REASON: usize = 123;

/// The close code for a client that leaves its outgoing queue full too long. Not one of
/// graphql-transport-ws's fatal codes: its clients reconnect, and resume with `afterSequence`
/// or `after`.
pub const CLOSE_TOO_SLOW: u16 = 4503;

/// Frames waiting for the socket, beyond the one being written.
const OUTGOING_QUEUE: usize = 16;
/// Error answers the guard gives itself (refused subscriptions) waiting to be sent.
const REFUSALS_QUEUE: usize = 16;
/// Socket read buffer: client messages are small; a larger one arrives in several reads.
const READ_BUFFER: usize = 4 * 1024;
/// How long a closing connection waits for its close frame to get out.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the incoming side has seen, shared with the outgoing side.
struct Guard {
    init_received: bool,
    /// Ids of the subscriptions running now.
    running: HashSet<String>,
    max_subscriptions: usize,
    /// Error messages for refused subscriptions, sent by the outgoing side.
    refusals: mpsc::Sender<String>,
    /// Why the connection must close, once a client message broke the protocol.
    violation: Option<(u16, String)>,
}

impl Guard {
    /// Whether `msg` goes on to async-graphql, was answered here, or broke the protocol (the
    /// violation is recorded).
    fn admit(&mut self, msg: &serde_json::Result<ClientMessage>) -> Verdict {
        match msg {
            Ok(ClientMessage::ConnectionInit { .. }) => self.init_received = true,
            Ok(ClientMessage::Start { .. }) if !self.init_received => {
                self.violation = Some((4401, "Unauthorized".into()));
            }
            Ok(ClientMessage::Start { id, .. }) if self.running.contains(id) => {
                self.violation = Some((4409, format!("Subscriber for {id} already exists")));
            }
            Ok(ClientMessage::Start { id, .. }) if self.running.len() >= self.max_subscriptions => {
                let error: async_graphql::Error = AppError::BadInput(format!(
                    "too many subscriptions on this connection (at most {}): complete one first or open another connection",
                    self.max_subscriptions
                ))
                .into();
                let frame = serde_json::json!({ "type": "error", "id": id, "payload": [error] }).to_string();
                if self.refusals.try_send(frame).is_ok() {
                    return Verdict::Answered;
                }
                // Refusals pile up unsent: the client does not read its answers.
                self.violation = Some((CLOSE_TOO_SLOW, "Client too slow: it does not read its answers".into()));
            }
            Ok(ClientMessage::Start { id, .. }) => {
                self.running.insert(id.clone());
            }
            Ok(ClientMessage::Stop { id }) => {
                self.running.remove(id);
            }
            _ => {}
        }
        if self.violation.is_some() {
            Verdict::Violation
        } else {
            Verdict::Pass
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Answered,
    Violation,
}

/// Accepts a WebSocket upgrade with this server's buffer sizes and serves it.
pub fn upgrade(upgrade: WebSocketUpgrade, state: AppState, protocol: WebSocketProtocols) -> Response {
    let max_message = usize::try_from(state.settings.max_body_bytes).unwrap_or(usize::MAX);
    upgrade
        .protocols(["graphql-transport-ws"])
        .read_buffer_size(READ_BUFFER)
        // Each frame is written as it comes; the outgoing queue below is the only buffer.
        .write_buffer_size(0)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| serve(socket, state, protocol))
}

pub async fn serve(socket: WebSocket, state: AppState, protocol: WebSocketProtocols) {
    let (refusals, mut refused) = mpsc::channel(REFUSALS_QUEUE);
    let guard = Arc::new(Mutex::new(Guard {
        init_received: false,
        running: HashSet::new(),
        max_subscriptions: state.settings.ws_max_subscriptions as usize,
        refusals,
        violation: None,
    }));
    let (sink, incoming) = socket.split();
    let (out, out_rx) = mpsc::channel(OUTGOING_QUEUE);
    let (stop_writer, stopped) = oneshot::channel();
    let writer = tokio::spawn(write(sink, out_rx, stopped));

    let admit = guard.clone();
    let input = incoming
        .take_while(|res| ready(res.is_ok()))
        .filter_map(|res| {
            ready(match res {
                Ok(msg @ (Message::Text(_) | Message::Binary(_))) => Some(ClientMessage::from_bytes(msg.into_data())),
                _ => None,
            })
        })
        .map(move |msg| (admit.lock().expect("ws guard").admit(&msg), msg))
        // Ends the input at a violation; the loop below then sends the violation's close frame.
        .take_while(|(verdict, _)| ready(*verdict != Verdict::Violation))
        .filter_map(|(verdict, msg)| ready((verdict == Verdict::Pass).then_some(msg)));
    let init_state = state.clone();
    let jwt = state.jwt.clone();
    let payloads = OutgoingPayloads::default();
    let session_payloads = payloads.clone();
    let messages = async_graphql::http::WebSocket::from_message_stream(state.schema.clone(), input, protocol).on_connection_init(move |payload| async move {
        let mut data = super::ws_init(&init_state, &jwt, payload)?;
        data.insert(session_payloads);
        Ok(data)
    });
    futures::pin_mut!(messages);

    let init_deadline = tokio::time::sleep(state.settings.ws_init_timeout());
    tokio::pin!(init_deadline);
    let mut awaiting_init = true;
    let slow_after = state.settings.ws_slow_client();
    let mut too_slow = false;
    loop {
        let next = tokio::select! {
            msg = messages.next() => msg,
            Some(frame) = refused.recv() => Some(WsMessage::Text(frame)),
            _ = &mut init_deadline, if awaiting_init => {
                awaiting_init = false;
                if guard.lock().expect("ws guard").init_received {
                    continue;
                }
                Some(WsMessage::Close(4408, "Connection initialisation timeout".into()))
            }
        };
        let msg = match next {
            Some(msg) => msg,
            None => match guard.lock().expect("ws guard").violation.take() {
                Some((code, reason)) => WsMessage::Close(code, reason),
                None => break,
            },
        };
        let (frame, closing) = outgoing(msg, &guard, &payloads);
        // While the queue is full, nothing more is produced for this connection: its events
        // wait (and coalesce) in the event buffer instead of in memory here.
        let queued = match out.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(frame)) => match tokio::time::timeout(slow_after, out.send(frame)).await {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    too_slow = true;
                    false
                }
            },
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if !queued || closing {
            break;
        }
    }
    if too_slow {
        tracing::info!("closing a WebSocket whose client does not read");
        state.subscriptions.record_too_slow();
        let _ = stop_writer.send(close_frame(CLOSE_TOO_SLOW, &format!("Client too slow: not reading for {} s", slow_after.as_secs())));
    }
    drop(out);
    let _ = writer.await;
}

/// Writes the queued frames until the queue ends or a close frame went out; `stop` jumps the
/// queue with a close frame (the queue is stuck behind a client that does not read).
async fn write(mut sink: futures::stream::SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Message>, stop: oneshot::Receiver<Message>) {
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => match frame {
                Some(f) => f,
                None => return,
            },
            Ok(close) = &mut stop => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
                return;
            }
        };
        let closing = matches!(frame, Message::Close(_));
        tokio::select! {
            sent = sink.send(frame) => if sent.is_err() { return },
            Ok(close) = &mut stop => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
                return;
            }
        }
        if closing {
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
            return;
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: truncate(reason, MAX_CLOSE_REASON).into() }))
}

/// The frame for one outgoing message: close codes of graphql-transport-ws instead of
/// async-graphql's generic ones, reasons cut to fit, finished subscriptions forgotten, shared
/// payloads spliced in.
fn outgoing(msg: WsMessage, guard: &Mutex<Guard>, payloads: &OutgoingPayloads) -> (Message, bool) {
    match msg {
        WsMessage::Text(text) => {
            if text.starts_with(r#"{"type":"next""#) {
                return (Message::Text(payloads.splice(text).into()), false);
            }
            if text.starts_with(r#"{"type":"complete""#) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if let Some(id) = v["id"].as_str() {
                        guard.lock().expect("ws guard").running.remove(id);
                    }
                }
            }
            (Message::Text(text.into()), false)
        }
        WsMessage::Close(code, reason) => {
            let code = match code {
                1002 if reason.starts_with(FORBIDDEN) => 4403,
                1002 => 4400,
                1011 => 4401,
                other => other,
            };
            (close_frame(code, &reason), true)
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 123), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long, MAX_CLOSE_REASON);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate(&"a".repeat(200), MAX_CLOSE_REASON).len(), 123);
    }
}
