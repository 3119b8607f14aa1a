//! `comper serve`: Comper as a localhost HTTP backend for host applications and for ReaLJam's
//! web page. The models are loaded once and shared by a fixed pool of worker threads, each with
//! its own live engine; requests wait in the HTTP library's queue while all workers are busy.
//!
//! Endpoints:
//! - `GET /models`: the live models' names (ReaLJam's protocol).
//! - `POST /play`: ReaLJam's live request ([`realjam`]).
//! - `POST /suggest`: five options for a JSON melody ([`comper_generate::melody_json`]).
//! - `POST /suggest/midi`: five options for a `.mid` body, each with its MIDI file (base64);
//!   settings in the query string (`?options=5&seed=1&temperature=0.8&fit=0.8&model=…&melody=false`).
//! - `GET /…`: files of the `--frontend` folder, `/` being its `index.html`.
//!
//! Every bad request gets a 4xx with `{"error": "field: problem", "field": "…"}`; the server
//! keeps serving.

pub mod realjam;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, StatusCode};

use comper_generate::live::{LiveConfig, LiveEngine};
use comper_generate::melody_json::{
    integer, option_midi, parse_suggest_request, requested_model, FieldError, OptionFile,
    SuggestReply, MAX_OPTIONS, MAX_TEMPERATURE,
};
use comper_generate::runtime::ModelPair;
use comper_generate::sample::SamplingParams;
use comper_generate::suggest::{suggest, Harmonizer, Phrase};
use comper_music::chord::ChordTable;
use comper_music::harmony::GuideSettings;
use comper_music::midi_file::{parse_midi, MelodyChoice};
use comper_music::progression::VoicingStyle;

/// Largest request body accepted by default (a long `/play` session or a `.mid` file).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// How often idle workers look for a shutdown.
const POLL: Duration = Duration::from_millis(200);
/// Chords of `/suggest` may change every 8th note, as `comper suggest`'s default.
const SUGGEST_CHANGE_GRID: usize = 2;
/// Options offered when a request does not say.
const DEFAULT_OPTIONS: usize = 5;
/// Temperature when a request does not say.
const DEFAULT_TEMPERATURE: f32 = 0.8;

/// The live models' names, as `GET /models` lists them: the online decoder plans live; the
/// offline model, when loaded, samples ReaLJam's intro and is `/suggest`'s default.
fn live_names(models: &ModelPair) -> Vec<String> {
    vec![models.online.config.name.clone()]
}

/// The model a `/suggest` request names: `offline`, `online`, a loaded model's name, or (none)
/// the offline model when there is one.
fn harmonizer_named<'m>(
    models: &'m ModelPair,
    name: Option<&str>,
) -> Result<Harmonizer<'m>, FieldError> {
    let offline = models.offline.as_deref();
    let online_name = &models.online.config.name;
    match (name, offline) {
        (None | Some("offline"), Some(model)) => Ok(Harmonizer::Offline(model)),
        (None | Some("online"), _) => Ok(Harmonizer::Online(&models.online)),
        (Some(name), _) if name == online_name => Ok(Harmonizer::Online(&models.online)),
        (Some(name), Some(model)) if name == model.config.base.name => {
            Ok(Harmonizer::Offline(model))
        }
        (Some(name), _) => {
            let mut known = vec!["online".to_string(), online_name.clone()];
            if let Some(model) = offline {
                known.extend(["offline".to_string(), model.config.base.name.clone()]);
            }
            Err(FieldError {
                field: "model".into(),
                problem: format!(
                    "unknown model {name:?}; this server has {}",
                    known.join(", ")
                ),
            })
        }
    }
}

/// How a server listens and works.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind; port 0 picks a free one (see [`Server::addr`]).
    pub addr: SocketAddr,
    /// Worker threads answering requests at once.
    pub workers: usize,
    /// Folder served at `/` (e.g. ReaLJam's `frontend/`).
    pub frontend: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Print one line per request on stderr.
    pub log: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
            frontend: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            log: true,
        }
    }
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
    #[error("the frontend folder {0} has no index.html")]
    NoFrontend(PathBuf),
    #[error("could not start a worker thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A running server; [`Server::shutdown`] stops it after the requests in progress.
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Stops a [`Server`] from another thread (a Ctrl-C handler).
#[derive(Clone)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    /// Asks the workers to finish the request in hand and stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Server {
    /// Binds `config.addr` and starts the workers.
    pub fn start(models: ModelPair, config: ServeConfig) -> Result<Self, ServeError> {
        if let Some(dir) = &config.frontend {
            if !dir.join("index.html").is_file() {
                return Err(ServeError::NoFrontend(dir.clone()));
            }
        }
        let http = tiny_http::Server::http(config.addr).map_err(|e| ServeError::Bind {
            addr: config.addr,
            message: e.to_string(),
        })?;
        let addr = http.server_addr().to_ip().unwrap_or(config.addr);
        let http = Arc::new(http);
        let stopping = Arc::new(AtomicBool::new(false));
        let config = Arc::new(config);
        let mut workers = Vec::with_capacity(config.workers.max(1));
        for i in 0..config.workers.max(1) {
            let (http, stopping, models, config) = (
                Arc::clone(&http),
                Arc::clone(&stopping),
                models.clone(),
                Arc::clone(&config),
            );
            let worker = std::thread::Builder::new()
                .name(format!("comper-serve-{i}"))
                .spawn(move || work(&http, &stopping, &models, &config))?;
            workers.push(worker);
        }
        Ok(Self {
            addr,
            stopping,
            workers,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.stopping))
    }

    /// Waits until the server was stopped (by a [`Stopper`]) and its workers are done.
    pub fn join(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    /// Stops the server and waits for the requests in progress.
    pub fn shutdown(self) {
        self.stopper().stop();
        self.join();
    }
}

/// One worker: takes requests until the server stops.
fn work(http: &tiny_http::Server, stopping: &AtomicBool, models: &ModelPair, config: &ServeConfig) {
    let mut handler = Handler::new(models, config);
    while !stopping.load(Ordering::SeqCst) {
        match http.recv_timeout(POLL) {
            Ok(Some(request)) => handler.answer(request),
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

/// A reply before it is written: status, content type, body.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                content_type: "application/json",
                body,
            },
            Err(e) => Self::error(500, "reply", &e.to_string()),
        }
    }

    fn error(status: u16, field: &str, problem: &str) -> Self {
        #[derive(Serialize)]
        struct ErrorJson<'a> {
            error: String,
            field: &'a str,
        }
        let body = ErrorJson {
            error: format!("{field}: {problem}"),
            field,
        };
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    fn bad(error: FieldError) -> Self {
        Self::error(400, &error.field, &error.problem)
    }
}

/// A worker's state: its live engine (sampler and decoder cache) and the shared models.
struct Handler<'m> {
    models: &'m ModelPair,
    config: &'m ServeConfig,
    live: Result<LiveEngine<'m>, String>,
    table: ChordTable,
}

impl<'m> Handler<'m> {
    fn new(models: &'m ModelPair, config: &'m ServeConfig) -> Self {
        let live_config = LiveConfig {
            seed: rand::random(),
            ..LiveConfig::default()
        };
        let live = models
            .live_engine(live_config)
            .or_else(|_| LiveEngine::for_models(&models.online, None, live_config))
            .map_err(|e| e.to_string());
        Self {
            models,
            config,
            live,
            table: ChordTable::new(&models.online.vocabulary),
        }
    }

    fn answer(&mut self, mut request: Request) {
        let started = Instant::now();
        let method = request.method().clone();
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let reply = match self.read_body(&mut request) {
            Err(reply) => reply,
            Ok(body) => self.route(&method, path, query, &body),
        };
        let status = reply.status;
        let response = Response::from_data(reply.body)
            .with_status_code(StatusCode(status))
            .with_header(header("Content-Type", reply.content_type));
        let written = request.respond(response);
        if self.config.log {
            let failed = written.err().map(|e| format!(" (reply not sent: {e})"));
            eprintln!(
                "comper serve: {method} {path} {status} {:.1} ms{}",
                started.elapsed().as_secs_f64() * 1e3,
                failed.unwrap_or_default()
            );
        }
    }

    /// The body, at most `max_body_bytes` of it.
    fn read_body(&self, request: &mut Request) -> Result<Vec<u8>, Reply> {
        let limit = self.config.max_body_bytes;
        let too_large = || {
            Reply::error(
                413,
                "body",
                &format!("larger than the {limit}-byte limit of this server"),
            )
        };
        if request.body_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        request
            .as_reader()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| Reply::error(400, "body", &format!("could not be read: {e}")))?;
        if body.len() > limit {
            return Err(too_large());
        }
        Ok(body)
    }

    fn route(&mut self, method: &Method, path: &str, query: &str, body: &[u8]) -> Reply {
        match (method, path) {
            (Method::Get, "/models") => Reply::json(200, &live_names(self.models)),
            (Method::Post, "/play") => self.play(body),
            (Method::Post, "/suggest") => self.suggest_json(body),
            (Method::Post, "/suggest/midi") => self.suggest_midi(query, body),
            (_, "/models" | "/play" | "/suggest" | "/suggest/midi") => {
                Reply::error(405, "method", &format!("{method} is not allowed on {path}"))
            }
            (Method::Get | Method::Head, _) => self.static_file(path),
            _ => Reply::error(404, "path", &format!("no endpoint {method} {path}")),
        }
    }

    fn play(&mut self, body: &[u8]) -> Reply {
        let vocab = &self.models.online.vocabulary;
        let request = match realjam::parse_play(body, vocab) {
            Ok(request) => request,
            Err(error) => return Reply::bad(error),
        };
        if !live_names(self.models).contains(&request.model) {
            return Reply::error(
                400,
                "model",
                &format!(
                    "unknown model {:?}; GET /models lists {:?}",
                    request.model,
                    live_names(self.models)
                ),
            );
        }
        let engine = match &mut self.live {
            Ok(engine) => engine,
            Err(e) => return Reply::error(500, "model", e),
        };
        let reply = match engine.plan_for_client(&request.turn()) {
            Ok(None) => Ok(realjam::PlayReply::waiting(request.frame)),
            Ok(Some(plan)) => realjam::PlayReply::planned(&plan, request.frame, vocab, &self.table)
                .map_err(|e| Reply::error(500, "plan", &e.to_string())),
            Err(comper_generate::live::LiveError::Sample(e)) => {
                Err(Reply::error(500, "model", &e.to_string()))
            }
            Err(e) => Err(Reply::error(400, "lookahead", &e.to_string())),
        };
        match reply {
            Ok(reply) => Reply::json(200, &reply),
            Err(reply) => reply,
        }
    }

    fn suggest_json(&mut self, body: &[u8]) -> Reply {
        // The longest phrase either model holds bounds the melody; the chosen one is checked below.
        let request = match harmonizer_named(self.models, requested_model(body).as_deref())
            .and_then(|model| parse_suggest_request(body, model.max_frames()).map(|r| (model, r)))
        {
            Ok(parsed) => parsed,
            Err(error) => return Reply::bad(error),
        };
        let (model, request) = request;
        let settings = SuggestSettings {
            options: request.options.unwrap_or(DEFAULT_OPTIONS),
            temperature: request.temperature.unwrap_or(DEFAULT_TEMPERATURE),
            fit: request
                .fit
                .unwrap_or(comper_music::harmony::guide::DEFAULT_STRENGTH),
            seed: request.seed,
        };
        let phrase = Phrase::from_notes(&request.notes, request.time_signature, model.max_frames());
        match run_suggest(model, &phrase, &settings) {
            Ok(suggestions) => Reply::json(200, &SuggestReply::new(&suggestions)),
            Err(e) => Reply::error(500, "model", &e),
        }
    }

    fn suggest_midi(&mut self, query: &str, body: &[u8]) -> Reply {
        let parsed = parse_midi_query(query).and_then(|q| {
            let model = harmonizer_named(self.models, q.model.as_deref())?;
            Ok((q, model))
        });
        let (query, model) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return Reply::bad(error),
        };
        let melody = match parse_midi(body).and_then(|song| song.melody(MelodyChoice::Auto)) {
            Ok(melody) => melody,
            Err(e) => return Reply::error(400, "body", &format!("not a usable MIDI file: {e}")),
        };
        let phrase = Phrase::from_notes(&melody.notes, melody.time_signature, model.max_frames());
        let suggestions = match run_suggest(model, &phrase, &query.settings) {
            Ok(suggestions) => suggestions,
            Err(e) => return Reply::error(500, "model", &e),
        };
        let mut reply = SuggestReply::new(&suggestions);
        reply.truncated_bars = phrase.truncated_bars;
        let table = ChordTable::new(model.vocabulary());
        let file = OptionFile {
            melody: query.with_melody.then_some(melody.notes.as_slice()),
            tempo_bpm: melody.tempo_bpm,
            time_signature: melody.time_signature,
            style: VoicingStyle::VoiceLed,
        };
        for (option, suggestion) in reply.options.iter_mut().zip(&suggestions) {
            match option_midi(suggestion, &table, file) {
                Ok(bytes) => {
                    option.midi_base64 =
                        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                Err(e) => return Reply::error(500, "midi", &e.to_string()),
            }
        }
        Reply::json(200, &reply)
    }

    /// A file of the frontend folder; paths that leave it are not found.
    fn static_file(&self, path: &str) -> Reply {
        let not_found = || Reply::error(404, "path", &format!("no file {path}"));
        let Some(root) = &self.config.frontend else {
            return not_found();
        };
        let relative = Path::new(path.trim_start_matches('/'));
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return not_found();
        }
        let file = if relative.as_os_str().is_empty() {
            root.join("index.html")
        } else {
            root.join(relative)
        };
        match std::fs::read(&file) {
            Ok(body) => Reply {
                status: 200,
                content_type: content_type(&file),
                body,
            },
            Err(_) => not_found(),
        }
    }
}

/// The settings of one five-options request.
#[derive(Debug, Clone, Copy)]
struct SuggestSettings {
    options: usize,
    temperature: f32,
    fit: f32,
    seed: Option<u64>,
}

fn run_suggest(
    model: Harmonizer,
    phrase: &Phrase,
    settings: &SuggestSettings,
) -> Result<Vec<comper_generate::suggest::Suggestion>, String> {
    let params = SamplingParams {
        temperature: settings.temperature,
        change_grid: SUGGEST_CHANGE_GRID,
        ..SamplingParams::default()
    };
    let mut rng = match settings.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let guide = GuideSettings::with_strength(settings.fit);
    suggest(
        model,
        phrase,
        &[],
        settings.options,
        &params,
        &guide,
        &mut rng,
    )
    .map_err(|e| e.to_string())
}

/// `/suggest/midi`'s query settings.
struct MidiQuery {
    settings: SuggestSettings,
    model: Option<String>,
    with_melody: bool,
}

fn parse_midi_query(query: &str) -> Result<MidiQuery, FieldError> {
    let mut parsed = MidiQuery {
        settings: SuggestSettings {
            options: DEFAULT_OPTIONS,
            temperature: DEFAULT_TEMPERATURE,
            fit: comper_music::harmony::guide::DEFAULT_STRENGTH,
            seed: None,
        },
        model: None,
        with_melody: true,
    };
    let number = |key: &str, value: &str, max: f64| -> Result<f64, FieldError> {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=max).contains(v))
            .ok_or_else(|| FieldError {
                field: key.into(),
                problem: format!("{value:?} is not a number in 0–{max}"),
            })
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| FieldError {
            field: key.into(),
            problem: "badly escaped value".into(),
        })?;
        let as_integer = |max: u64, min: u64| -> Result<u64, FieldError> {
            let json = value
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            integer(&json, key, min, max)
        };
        match key {
            "options" => parsed.settings.options = as_integer(MAX_OPTIONS as u64, 1)? as usize,
            "seed" => parsed.settings.seed = Some(as_integer(u64::MAX, 0)?),
            "temperature" => {
                parsed.settings.temperature = number(key, &value, MAX_TEMPERATURE)? as f32
            }
            "fit" => parsed.settings.fit = number(key, &value, 1.0)? as f32,
            "model" => parsed.model = Some(value),
            "melody" => {
                parsed.with_melody = match value.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(FieldError {
                            field: key.into(),
                            problem: format!("{value:?} is not true or false"),
                        })
                    }
                }
            }
            _ => {
                return Err(FieldError {
                    field: key.into(),
                    problem: "unknown setting (options, seed, temperature, fit, model, melody)"
                        .into(),
                })
            }
        }
    }
    Ok(parsed)
}

/// `%XX` and `+` unescaped; `None` for a broken escape or non-UTF-8 result.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("static header names and values are ASCII"))
}
