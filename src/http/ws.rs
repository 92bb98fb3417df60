//! `/graphql/ws`: async-graphql's graphql-transport-ws state machine, with the parts of the
//! protocol it leaves out added around it (as a guard on the messages coming in and a rewrite of
//! the frames going out):
//!
//! - no `connection_init` within `ws_init_timeout_seconds`: close 4408;
//! - `subscribe` before `connection_init`: close 4401 (async-graphql would close with 1011);
//! - `subscribe` with the id of a running subscription: close 4409 (async-graphql would silently
//!   replace the running one);
//! - a refused `connection_init`: close 4403 (async-graphql: 1002);
//! - a message that is not one of the protocol: close 4400 (async-graphql: 1002);
//! - every close reason at most 123 bytes, as a close frame allows.
//!
//! What async-graphql already does is left to it: 4429 for a second `connection_init`, pings and
//! pongs, `complete` in both directions.
use std::{
    collections::HashSet,
    future::ready,
    sync::{Arc, Mutex},
};

use async_graphql::http::{ClientMessage, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use super::FORBIDDEN;
use crate::app::AppState;

/// The longest close reason: a control frame carries at most 125 bytes, 2 of them the code.
pub const MAX_CLOSE_REASON: usize = 123;

/// What the incoming side has seen, shared with the outgoing side.
#[derive(Default)]
struct Guard {
    init_received: bool,
    /// Ids of the subscriptions running now.
    running: HashSet<String>,
    /// Why the connection must close, once a client message broke the protocol.
    violation: Option<(u16, String)>,
}

impl Guard {
    /// Whether `msg` may go on to async-graphql; otherwise records the violation.
    fn admit(&mut self, msg: &serde_json::Result<ClientMessage>) -> bool {
        match msg {
            Ok(ClientMessage::ConnectionInit { .. }) => self.init_received = true,
            Ok(ClientMessage::Start { .. }) if !self.init_received => {
                self.violation = Some((4401, "Unauthorized".into()));
            }
            Ok(ClientMessage::Start { id, .. }) if !self.running.insert(id.clone()) => {
                self.violation = Some((4409, format!("Subscriber for {id} already exists")));
            }
            Ok(ClientMessage::Stop { id }) => {
                self.running.remove(id);
            }
            _ => {}
        }
        self.violation.is_none()
    }
}

pub async fn serve(socket: WebSocket, state: AppState, protocol: WebSocketProtocols) {
    let guard = Arc::new(Mutex::new(Guard::default()));
    let (mut sink, incoming) = socket.split();
    let admit = guard.clone();
    let input = incoming
        .take_while(|res| ready(res.is_ok()))
        .filter_map(|res| {
            ready(match res {
                Ok(msg @ (Message::Text(_) | Message::Binary(_))) => Some(ClientMessage::from_bytes(msg.into_data())),
                _ => None,
            })
        })
        // Ends the input at a violation; the loop below then sends the violation's close frame.
        .take_while(move |msg| ready(admit.lock().expect("ws guard").admit(msg)));
    let init_state = state.clone();
    let jwt = state.jwt.clone();
    let messages = async_graphql::http::WebSocket::from_message_stream(state.schema.clone(), input, protocol)
        .on_connection_init(move |payload| async move { super::ws_init(&init_state, &jwt, payload) });
    futures::pin_mut!(messages);

    let init_deadline = tokio::time::sleep(state.settings.ws_init_timeout());
    tokio::pin!(init_deadline);
    let mut awaiting_init = true;
    loop {
        let next = tokio::select! {
            msg = messages.next() => msg,
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
        let (frame, closing) = outgoing(msg, &guard);
        if sink.send(frame).await.is_err() || closing {
            break;
        }
    }
}

/// The frame for one outgoing message: close codes of graphql-transport-ws instead of
/// async-graphql's generic ones, reasons cut to fit, finished subscriptions forgotten.
fn outgoing(msg: WsMessage, guard: &Mutex<Guard>) -> (Message, bool) {
    match msg {
        WsMessage::Text(text) => {
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
            (Message::Close(Some(CloseFrame { code, reason: truncate(&reason, MAX_CLOSE_REASON).into() })), true)
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
