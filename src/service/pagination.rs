//! Keyset pagination: a cursor holds the last row's sort key and id, so pages stay correct while
//! rows are added, and a page costs the same at any depth.
use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Value,
};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: u64,
    pub after: Option<String>,
    /// Whether the caller asked for the total (it costs a COUNT).
    pub want_total: bool,
}

impl PageArgs {
    /// `first` defaults to 20; more than 100, or a negative one, is bad input (a page is never
    /// cut short silently).
    pub fn new(first: Option<i32>, after: Option<String>, want_total: bool) -> AppResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if n < 0 => return Err(AppError::bad_input("`first` must not be negative")),
            Some(n) if n as u64 > MAX_PAGE => return Err(AppError::bad_input(format!("`first` must be at most {MAX_PAGE}: page through larger lists with `after`"))),
            Some(n) => n as u64,
        };
        Ok(Self { first, after, want_total })
    }
}

/// A sort key value inside a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Key {
    S(String),
    I(i64),
    T(DateTime<Utc>),
    U(uuid::Uuid),
}

impl From<Key> for Value {
    fn from(k: Key) -> Value {
        match k {
            Key::S(s) => s.into(),
            Key::I(i) => i.into(),
            Key::T(t) => t.into(),
            Key::U(u) => u.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor(Key, Key);

fn encode(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("cursor serializes"))
}

fn decode(s: &str) -> AppResult<Cursor> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| AppError::bad_input("invalid cursor"))
}

/// How a list is ordered: by `key`, ties broken by the unique `tie`.
pub struct Ordering<E: EntityTrait> {
    pub key: E::Column,
    pub tie: E::Column,
    pub descending: bool,
    pub key_of: fn(&E::Model) -> (Key, Key),
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next: bool,
    pub has_previous: bool,
    pub total: Option<u64>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next: self.has_next,
            has_previous: self.has_previous,
            total: self.total,
        }
    }

    /// Paginates rows already in memory (small child lists loaded in one batch), by position.
    pub fn from_vec(rows: Vec<T>, args: &PageArgs) -> AppResult<Self> {
        let start = match &args.after {
            None => 0,
            Some(c) => match decode(c)? {
                Cursor(Key::I(pos), _) if pos >= 0 => pos as usize + 1,
                _ => return Err(AppError::bad_input("invalid cursor")),
            },
        };
        let total = rows.len();
        let items: Vec<(String, T)> = rows
            .into_iter()
            .enumerate()
            .skip(start)
            .take(args.first as usize)
            .map(|(i, t)| (encode(&Cursor(Key::I(i as i64), Key::I(0))), t))
            .collect();
        Ok(Page { has_next: start + items.len() < total, has_previous: start > 0, items, total: Some(total as u64) })
    }
}

pub async fn paginate<E, C>(db: &C, select: Select<E>, order: &Ordering<E>, args: &PageArgs) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
    C: ConnectionTrait,
{
    let count = select.clone();
    let mut q = select;
    if let Some(after) = &args.after {
        let Cursor(k, t) = decode(after)?;
        let (k, t): (Value, Value) = (k.into(), t.into());
        let past = if order.descending {
            Condition::any().add(order.key.lt(k.clone())).add(Condition::all().add(order.key.eq(k)).add(order.tie.lt(t)))
        } else {
            Condition::any().add(order.key.gt(k.clone())).add(Condition::all().add(order.key.eq(k)).add(order.tie.gt(t)))
        };
        q = q.filter(past);
    }
    let dir = if order.descending { Order::Desc } else { Order::Asc };
    // The count and the page are independent: one round trip of waiting instead of two.
    let (total, mut rows) = futures::try_join!(
        async { if args.want_total { count.count(db).await.map(Some) } else { Ok(None) } },
        q.order_by(order.key, dir.clone()).order_by(order.tie, dir).limit(args.first + 1).all(db),
    )?;
    let has_next = rows.len() as u64 > args.first;
    rows.truncate(args.first as usize);
    let items = rows
        .into_iter()
        .map(|m| {
            let (k, t) = (order.key_of)(&m);
            (encode(&Cursor(k, t)), m)
        })
        .collect();
    Ok(Page { items, has_next, has_previous: args.after.is_some(), total })
}
