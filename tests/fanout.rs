//! Fan-out under load: many clients, several senders at full speed. Every
//! client must receive every line exactly once, each sender's lines in order.

mod common;

use std::collections::HashMap;
use std::thread;

use common::{Client, config, start};

const CLIENTS: usize = 100;
const SENDERS: usize = 10;
const LINES: usize = 1000;

#[test]
fn every_client_gets_every_line_once_and_in_order() {
    let addr = start(natter::Config {
        rate: 0, // Senders go as fast as they can.
        ..config()
    });
    let clients: Vec<Client> = (0..CLIENTS).map(|_| Client::join(addr)).collect();
    let names: Vec<String> = clients.iter().map(|c| c.who.clone()).collect();
    let senders: Vec<String> = names[..SENDERS].to_vec();

    let mut readers = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        if i < SENDERS {
            let mut writer = client.stream().try_clone().unwrap();
            thread::spawn(move || {
                use std::io::Write;
                let mut batch = String::new();
                for n in 0..LINES {
                    batch.push_str(&format!("line {n} of {i}\n"));
                    if batch.len() > 4000 {
                        writer.write_all(batch.as_bytes()).unwrap();
                        batch.clear();
                    }
                }
                writer.write_all(batch.as_bytes()).unwrap();
            });
        }
        let senders = senders.clone();
        readers.push(thread::spawn(move || {
            // sender name -> next expected line number
            let mut next: HashMap<String, usize> = senders.iter().map(|s| (s.clone(), 0)).collect();
            let mut got = 0;
            while got < SENDERS * LINES {
                let line = client.line();
                if line.ends_with(" has arrived") {
                    continue;
                }
                let (who, text) = line.split_once(": ").expect("a chat line");
                let n: usize = text
                    .strip_prefix("line ")
                    .and_then(|t| t.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected line {line:?}"));
                let expected = next.get_mut(who).expect("line from a sender");
                assert_eq!(
                    n, *expected,
                    "{}: lines of {who} out of order or lost",
                    client.who
                );
                *expected += 1;
                got += 1;
            }
            assert!(next.values().all(|&n| n == LINES));
            client
        }));
    }
    let mut clients: Vec<Client> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    // Nothing extra: a final marker is the very next line everyone gets.
    clients[0].say("end");
    let end = format!("{}: end", names[0]);
    for c in &mut clients {
        c.expect(&end);
    }
}
