//! A minimal graphql-transport-ws client for the Rust tests (the frontend contract tests use the
//! `graphql-ws` npm client against a real server too).
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

pub struct Subscription {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Subscription {
    /// Connects, authenticates with `token` and subscribes to `query`.
    pub async fn start(addr: std::net::SocketAddr, token: &str, query: &str, variables: Value) -> Self {
        let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
        ws.send(Message::Text(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}).to_string().into())).await.unwrap();
        loop {
            let msg = ws.next().await.expect("ack").expect("ack");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["type"], "connection_ack", "{v}");
                break;
            }
        }
        ws.send(Message::Text(json!({"type": "subscribe", "id": "1", "payload": {"query": query, "variables": variables}}).to_string().into())).await.unwrap();
        Self { ws }
    }

    /// The next `next` payload, or None when the subscription completed or the socket closed.
    pub async fn next(&mut self) -> Option<Value> {
        while let Some(msg) = self.ws.next().await {
            match msg.ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("next") => return Some(v["payload"].clone()),
                        Some("complete") => return None,
                        Some("error") => panic!("subscription error: {v}"),
                        Some("ping") => {
                            let _ = self.ws.send(Message::Text(json!({"type": "pong"}).to_string().into())).await;
                        }
                        _ => {}
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    }
}
