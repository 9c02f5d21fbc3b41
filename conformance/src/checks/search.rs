//! §6.10 (search). A server without the SEARCH feature passes by saying so
//! (UNSUPPORTED_EXTENSION); one with it must never show a room the searcher cannot read.

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{RoomJoin, Search};

use crate::raw::{User, fresh_name};
use crate::{Check, Level::*};

fn search(query: &str) -> Result<Search, String> {
    Ok(Search::new(Text::new(query).map_err(|e| e.to_string())?, 50))
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "6.10-1",
            "§6.10",
            Must,
            "SEARCH never returns entries of a private room the searcher is not in",
            |t| async move {
                let ada = User::new(&t, "seeker").await?;
                let mallory = User::new(&t, "snoop").await?;
                let secret = ada.room(true, false).await?;
                let open = ada.room(false, false).await?;
                let word = fresh_name("w");
                ada.post(secret, &format!("{word} private")).await?;
                ada.post(open, &format!("{word} public")).await?;
                mallory
                    .conn
                    .request_one(RoomJoin { room: open })
                    .await
                    .map_err(|e| format!("ROOM_JOIN: {e:?}"))?;
                // Until the public post is found (an index may lag a few seconds).
                for _ in 0..50 {
                    match mallory.conn.search(search(&word)?).await {
                        Err(e) if e.code() == Some(ErrorCode::UNSUPPORTED_EXTENSION) => {
                            return Ok(());
                        }
                        Err(e) => return Err(format!("SEARCH: {e:?}")),
                        Ok((hits, _)) => {
                            if let Some(leak) = hits.iter().find(|h| h.room == secret) {
                                return Err(format!(
                                    "a private room's entry was returned: {leak:?}"
                                ));
                            }
                            if hits.iter().any(|h| h.room == open) {
                                return Ok(());
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err("the public post was never found".into())
            },
        ),
        Check::new(
            "6.10-2",
            "§6.10",
            Must,
            "an invalid operator value is INVALID_REQUEST",
            |t| async move {
                let ada = User::new(&t, "badquery").await?;
                match ada.conn.search(search("before:2026-13-45 anything")?).await {
                    Err(e) if e.code() == Some(ErrorCode::UNSUPPORTED_EXTENSION) => Ok(()),
                    Err(e) if e.code() == Some(ErrorCode::INVALID_REQUEST) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
    ]
}
