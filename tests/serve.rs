//! `comper serve` end to end: a server on a free loopback port with the shipped models, every
//! endpoint, every kind of bad input (answered with a 4xx naming the field, and the server keeps
//! serving), 40 `/suggest` requests at once, and ReaLJam's `/play` loop as its page runs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use comper_generate::runtime::ModelPair;
use comper_model::{LoadedModel, LoadedOffline};
use comper_music::midi_file::parse_midi;
use comper_serve::{ServeConfig, Server};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn models() -> ModelPair {
    static MODELS: OnceLock<ModelPair> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            ModelPair::new(
                Arc::new(LoadedModel::load(&root().join("weights/comper-online")).unwrap()),
                Some(Arc::new(
                    LoadedOffline::load(&root().join("weights/comper-offline")).unwrap(),
                )),
            )
        })
        .clone()
}

/// A static folder standing in for a web client.
fn frontend() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_frontend");
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(dir.join("index.html"), "<html>jam</html>").unwrap();
    std::fs::write(dir.join("js/main.js"), "console.log(1)").unwrap();
    dir
}

fn start() -> Server {
    start_with(ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        frontend: Some(frontend()),
        log: false,
        ..ServeConfig::default()
    })
}

fn start_with(config: ServeConfig) -> Server {
    Server::start(models(), config).expect("the server starts on a free port")
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

/// Status and body of a request; 4xx/5xx are answers too.
fn send(request: ureq::Request, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let result = match body {
        Some(body) => request.send_bytes(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("no answer: {e}"),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

fn post_json(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = send(
        ureq::post(&url(server, path)).set("Content-Type", "application/json"),
        Some(body.to_string().as_bytes()),
    );
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON reply"),
    )
}

fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    send(ureq::get(&url(server, path)), None)
}

/// Ode to Joy's first phrase as a JSON melody, 8 bars.
fn melody(seed: u64) -> Value {
    let pitches = [
        64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62, 62, 64, 64, 65, 67, 67, 65, 64,
        62, 60, 60, 62, 64, 62, 60, 60, 60,
    ];
    let notes: Vec<Value> = pitches
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"pitch": p, "start_beat": i as f64, "end_beat": i as f64 + 0.9}))
        .collect();
    json!({"notes": notes, "bpm": 100, "beats_per_bar": 4, "seed": seed})
}

fn assert_options(reply: &Value, count: usize) {
    let options = reply["options"].as_array().expect("options");
    assert_eq!(options.len(), count, "{reply}");
    for option in options {
        let chords = option["chords"].as_array().expect("chords");
        assert!(!chords.is_empty());
        for chord in chords {
            assert!(chord["symbol"].as_str().is_some_and(|s| !s.is_empty()));
            assert!(chord["end_beat"].as_f64() > chord["start_beat"].as_f64());
        }
        assert!(option["log_likelihood"].as_f64().is_some());
        assert!(option["melody_fit"].as_f64().is_some());
        assert!(option["description"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn models_lists_the_live_model() {
    let server = start();
    let (status, body) = get(&server, "/models");
    assert_eq!(status, 200);
    let names: Vec<String> = serde_json::from_slice(&body).unwrap();
    assert_eq!(names, vec![models().online.config.name.clone()]);
    server.shutdown();
}

#[test]
fn suggest_answers_exactly_what_the_command_line_prints() {
    let server = start();
    let request = melody(11);
    let (status, reply) = post_json(&server, "/suggest", &request);
    assert_eq!(status, 200, "{reply}");
    assert_options(&reply, 5);
    let (status, three) = post_json(&server, "/suggest", &json!({"options": 3}).merge(&request));
    assert_eq!(status, 200);
    assert_options(&three, 3);

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("melody.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_comper"))
        .args(["suggest", file.to_str().unwrap(), "--json", "--out"])
        .arg(dir.join("out"))
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed, reply,
        "the server and `comper suggest melody.json --json` agree"
    );
    server.shutdown();
}

/// `json!` has no spread; this merges the request's fields under the given ones.
trait Merge {
    fn merge(self, base: &Value) -> Value;
}

impl Merge for Value {
    fn merge(self, base: &Value) -> Value {
        let mut out = base.clone();
        if let (Some(out), Some(extra)) = (out.as_object_mut(), self.as_object()) {
            for (k, v) in extra {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

#[test]
fn suggest_midi_returns_a_file_per_option() {
    let server = start();
    let file = std::fs::read(root().join("assets/ode_to_joy.mid")).unwrap();
    let (status, body) = send(
        ureq::post(&url(&server, "/suggest/midi?options=4&seed=3&melody=false")),
        Some(&file),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_options(&reply, 4);
    for option in reply["options"].as_array().unwrap() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(option["midi_base64"].as_str().expect("midi"))
            .unwrap();
        let song = parse_midi(&bytes).expect("a MIDI file");
        assert_eq!(song.parts.len(), 1, "chords only");
        let chords = option["chords"].as_array().unwrap().len();
        assert!(
            song.parts[0].notes.len() >= 3 * chords,
            "each chord has its notes"
        );
    }
    server.shutdown();
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field_and_the_server_keeps_serving() {
    let server = start_with(ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        max_body_bytes: 64 << 10,
        log: false,
        ..ServeConfig::default()
    });
    let note = |pitch: Value, start: Value, end: Value| json!({"notes": [{"pitch": pitch, "start_beat": start, "end_beat": end}]});
    let many: Vec<Value> = (0..400)
        .map(|i| json!({"pitch": 60, "start_beat": i as f64 * 0.1, "end_beat": i as f64 * 0.1 + 0.05}))
        .collect();
    let json_cases: Vec<(&str, Value, &str)> = vec![
        ("/suggest", json!([1, 2]), "body"),
        ("/suggest", json!({"notes": "C D E"}), "notes"),
        (
            "/suggest",
            note(json!(128), json!(0), json!(1)),
            "notes[0].pitch",
        ),
        (
            "/suggest",
            note(json!("C4"), json!(0), json!(1)),
            "notes[0].pitch",
        ),
        (
            "/suggest",
            note(json!(60), json!(-2), json!(1)),
            "notes[0].start_beat",
        ),
        (
            "/suggest",
            note(json!(60), json!(0), json!(1e12)),
            "notes[0].end_beat",
        ),
        (
            "/suggest",
            note(json!(60), json!(3), json!(2)),
            "notes[0].end_beat",
        ),
        ("/suggest", json!({"notes": many}), "notes"),
        ("/suggest", json!({"notes": [], "model": "gpt"}), "model"),
        ("/suggest", json!({"notes": [], "options": 500}), "options"),
        ("/suggest", json!({"notes": [], "bpm": "fast"}), "bpm"),
        ("/play", json!({"notes": []}), "frame"),
        (
            "/play",
            play_request(json!("nobody"), 40, &[], false),
            "model",
        ),
        ("/play", play_request(json!(7), 40, &[], false), "model"),
        (
            "/play",
            play_request_with(|r| r["frame"] = json!(-1)),
            "frame",
        ),
        (
            "/play",
            play_request_with(|r| r["frame"] = json!(1e15)),
            "frame",
        ),
        (
            "/play",
            play_request_with(|r| r["notes"][0]["pitch"] = json!(200)),
            "notes[0].pitch",
        ),
        (
            "/play",
            play_request_with(|r| r["notes"][0]["on"] = json!("yes")),
            "notes[0].on",
        ),
        (
            "/play",
            play_request_with(|r| r["commitahead"] = json!(99)),
            "commitahead",
        ),
        (
            "/play",
            play_request_with(|r| r["chordTokens"] = json!([5])),
            "chordTokens[0]",
        ),
        (
            "/play",
            play_request_with(|r| r["temperature"] = json!("hot")),
            "temperature",
        ),
    ];
    for (path, body, field) in json_cases {
        let (status, reply) = post_json(&server, path, &body);
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert_eq!(reply["field"], field, "{path} {body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with(field),
            "{reply}"
        );
    }
    let raw_cases: Vec<(&str, &[u8], u16, &str)> = vec![
        ("/suggest", b"{\"notes\": [", 400, "body"),
        ("/play", b"not json", 400, "body"),
        ("/suggest/midi", b"MThd garbage", 400, "body"),
        ("/suggest/midi?options=zero", b"", 400, "options"),
        ("/suggest/midi?model=gpt", b"", 400, "model"),
        ("/nowhere", b"{}", 404, "path"),
    ];
    for (path, body, expected, field) in raw_cases {
        let (status, bytes) = send(ureq::post(&url(&server, path)), Some(body));
        let reply: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (status, reply["field"].as_str().unwrap()),
            (expected, field),
            "{path}: {reply}"
        );
    }
    let (status, _) = get(&server, "/play");
    assert_eq!(status, 405);
    let huge = vec![b' '; 65 << 10];
    let (status, _) = send(ureq::post(&url(&server, "/suggest")), Some(&huge));
    assert_eq!(status, 413, "bodies are size-limited");
    let (status, _) = get(&server, "/");
    assert_eq!(status, 404, "no frontend folder, no page");

    let (status, reply) = post_json(&server, "/suggest", &melody(1));
    assert_eq!(status, 200, "still serving: {reply}");
    assert_options(&reply, 5);
    server.shutdown();
}

#[test]
fn forty_parallel_suggestions_are_all_answered() {
    let server = start_with(ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 4,
        log: false,
        ..ServeConfig::default()
    });
    let address = url(&server, "/suggest");
    let clients: Vec<_> = (0..40)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let body = melody(i).to_string();
                send(ureq::post(&address), Some(body.as_bytes()))
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        let (status, body) = client.join().unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_options(&serde_json::from_slice(&body).unwrap(), 5);
        answered += 1;
    }
    assert_eq!(answered, 40);
    server.shutdown();
}

#[test]
fn serves_the_frontend_folder_and_nothing_outside_it() {
    let server = start();
    let (status, body) = get(&server, "/");
    assert_eq!(
        (status, body.as_slice()),
        (200, b"<html>jam</html>".as_slice())
    );
    let (status, body) = get(&server, "/js/main.js");
    assert_eq!(
        (status, body.as_slice()),
        (200, b"console.log(1)".as_slice())
    );
    for path in [
        "/../Cargo.toml",
        "/js/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/missing.js",
    ] {
        assert_eq!(get(&server, path).0, 404, "{path}");
    }
    server.shutdown();
}

/// A `/play` body as ReaLJam's page builds it: a scale played one note per beat from frame 0.
fn play_request(model: Value, frame: usize, chord_tokens: &[i64], intro_set: bool) -> Value {
    let mut notes = Vec::new();
    let scale = [60, 62, 64, 65, 67, 69, 71, 72];
    for (i, beat) in (0..frame / 4).enumerate() {
        let pitch = scale[i % scale.len()];
        notes.push(json!({"on": true, "pitch": pitch, "frame": beat * 4}));
        notes.push(json!({"on": false, "pitch": pitch, "frame": beat * 4 + 3}));
    }
    json!({
        "model": model,
        "notes": notes,
        "chordTokens": chord_tokens,
        "frame": frame,
        "lookahead": 16,
        "commitahead": 8,
        "silenceTill": 32,
        "temperature": 0.8,
        "introSet": intro_set,
    })
}

fn play_request_with(change: impl Fn(&mut Value)) -> Value {
    let mut request = play_request(json!(models().online.config.name), 40, &[], true);
    change(&mut request);
    request
}

/// The page's `processAgentAction`: planned tokens go in at `frame`, gaps become -1, the intro
/// fills the start.
fn apply(tokens: &mut Vec<i64>, reply: &Value) {
    let frame = reply["frame"].as_u64().unwrap() as usize;
    let new: Vec<i64> = serde_json::from_value(reply["newChordTokens"].clone()).unwrap();
    if tokens.len() < frame {
        tokens.resize(frame, -1);
    }
    tokens.truncate(frame);
    tokens.extend(&new);
    if let Some(intro) = reply["introChordTokens"].as_array() {
        for (i, token) in intro.iter().enumerate() {
            tokens[i] = token.as_i64().unwrap();
        }
    }
}

#[test]
fn play_follows_realjams_protocol() {
    let server = start();
    let model = json!(models().online.config.name);
    // Too early: nothing until min(lookahead, 4) frames before the listening ends.
    let (status, reply) = post_json(
        &server,
        "/play",
        &play_request(model.clone(), 20, &[], false),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["newChords"], json!([]));
    assert_eq!(reply["introChordTokens"], Value::Null);
    assert_eq!(reply["frame"], 20);

    // The first plan brings the intro (one token per heard frame) and 16 planned frames.
    let mut tokens = Vec::new();
    let (status, first) = post_json(
        &server,
        "/play",
        &play_request(model.clone(), 28, &[], false),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["introChordTokens"].as_array().unwrap().len(), 28);
    assert_eq!(first["newChords"].as_array().unwrap().len(), 16);
    assert_eq!(first["newChordTokens"].as_array().unwrap().len(), 16);
    for chord in first["newChords"].as_array().unwrap() {
        let [symbol, pitches, onset] = chord.as_array().unwrap().as_slice() else {
            panic!("[symbol, pitches, is_onset]: {chord}")
        };
        assert!(onset.is_boolean());
        let pitches = pitches.as_array().unwrap();
        assert_eq!(
            symbol.as_str().unwrap().is_empty(),
            pitches.is_empty(),
            "{chord}"
        );
    }
    apply(&mut tokens, &first);
    assert_eq!(tokens.len(), 28 + 16);

    // Two frames later: of the 8 frames committed ahead of the last plan, the 6 still ahead
    // are kept; the rest is planned again.
    let (status, second) = post_json(
        &server,
        "/play",
        &play_request(model.clone(), 30, &tokens, true),
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["introChordTokens"], Value::Null);
    let planned: Vec<i64> = serde_json::from_value(second["newChordTokens"].clone()).unwrap();
    assert_eq!(planned.len(), 16);
    assert_eq!(planned[..6], tokens[30..36], "committed chords are kept");
    apply(&mut tokens, &second);

    // A missed stretch (the client fell behind by more than the lookahead) is planned afresh.
    let (status, late) = post_json(&server, "/play", &play_request(model, 80, &tokens, true));
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["newChordTokens"].as_array().unwrap().len(), 16);
    server.shutdown();
}
