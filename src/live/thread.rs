//! The inference thread: owns the model and a [`LiveEngine`], reads quantizer outputs from a
//! bounded channel and sends plans back.
//!
//! Channels (all bounded, so nothing grows without limit):
//! * `inputs`: audio side → engine. The audio thread uses `try_send`; a full channel drops the
//!   output (the engine is far behind anyway; the melody gets a gap heard as silence).
//! * `reports`: engine → audio side, plans with their timing. The engine uses `try_send` with
//!   [`ReplanPolicy::WhenIdle`]; when the audio side does not keep up, the plan is discarded
//!   (the next one supersedes it) and its storage reused.
//! * `recycle`: audio side → engine, plans the scheduler is done with, so their storage is freed
//!   or reused here and never on the audio thread.

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use super::{LiveConfig, LiveError, LiveModels};
use crate::quantize::QuantizerOutput;
use crate::schedule::PlanUpdate;

/// Capacity of the audio → engine channel: many seconds of frames and phrase events.
pub const INPUT_CAPACITY: usize = 1024;
/// Capacity of the engine → audio channel.
pub const REPORT_CAPACITY: usize = 4;
/// Capacity of the channel returning used plans; larger than the plans that can be in flight.
pub const RECYCLE_CAPACITY: usize = 64;

/// A message to the inference thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineInput {
    Quantizer(QuantizerOutput),
    /// With [`ReplanPolicy::OnRequest`]: re-plan now and always answer with a report.
    Replan,
}

/// When the inference thread re-plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplanPolicy {
    /// After draining every waiting input (the plugin): as soon and as often as it can.
    WhenIdle,
    /// Only on [`EngineInput::Replan`], answering each one (a simulation in lock-step).
    OnRequest,
}

/// What the inference thread sends back after a re-plan.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineReport {
    /// The new plan; `None` when there was nothing to plan (listening, nothing new heard).
    pub plan: Option<PlanUpdate>,
    /// Wall time of the re-plan in milliseconds (also in the plan).
    pub replan_ms: f64,
}

/// Handles to a running inference thread. Dropping `inputs` (with the handle) stops it.
pub struct EngineThread {
    pub inputs: Sender<EngineInput>,
    pub reports: Receiver<EngineReport>,
    pub recycle: Sender<PlanUpdate>,
    handle: JoinHandle<Result<(), LiveError>>,
}

impl EngineThread {
    /// Closes the input channel and waits for the thread; returns its error, if it failed.
    pub fn finish(self) -> Result<(), LiveError> {
        let EngineThread {
            inputs,
            reports,
            recycle,
            handle,
        } = self;
        drop(inputs);
        drop(recycle);
        drop(reports);
        handle.join().map_err(|_| LiveError::EngineGone)?
    }
}

/// Starts an inference thread running a [`super::LiveEngine`] on `models`.
pub fn spawn_engine(
    models: LiveModels,
    config: LiveConfig,
    policy: ReplanPolicy,
) -> Result<EngineThread, LiveError> {
    // Fail here, not on the thread, when the settings do not fit the model.
    models.engine(config)?;
    let (inputs, input_rx) = bounded(INPUT_CAPACITY);
    let (report_tx, reports) = bounded(REPORT_CAPACITY);
    let (recycle, recycle_rx) = bounded(RECYCLE_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("comper-live".into())
        .spawn(move || run(&models, config, policy, &input_rx, &report_tx, &recycle_rx))?;
    Ok(EngineThread {
        inputs,
        reports,
        recycle,
        handle,
    })
}

fn run(
    models: &LiveModels,
    config: LiveConfig,
    policy: ReplanPolicy,
    inputs: &Receiver<EngineInput>,
    reports: &Sender<EngineReport>,
    recycled: &Receiver<PlanUpdate>,
) -> Result<(), LiveError> {
    let mut engine = models.engine(config)?;
    loop {
        let Ok(first) = inputs.recv() else {
            return Ok(());
        };
        let mut requested = false;
        let mut next = Some(first);
        while let Some(input) = next.take() {
            match input {
                EngineInput::Quantizer(output) => engine.push(&output),
                EngineInput::Replan => requested = true,
            }
            if policy == ReplanPolicy::OnRequest && requested {
                break;
            }
            next = match inputs.try_recv() {
                Ok(input) => Some(input),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return Ok(()),
            };
        }
        while let Ok(plan) = recycled.try_recv() {
            engine.recycle(plan);
        }
        if policy == ReplanPolicy::OnRequest && !requested {
            continue;
        }
        let start = Instant::now();
        let mut plan = engine.replan()?;
        let replan_ms = start.elapsed().as_secs_f64() * 1e3;
        if let Some(plan) = plan.as_mut() {
            plan.replan_ms = replan_ms;
        }
        if plan.is_none() && !requested {
            continue;
        }
        let report = EngineReport { plan, replan_ms };
        match policy {
            ReplanPolicy::OnRequest => {
                if reports.send(report).is_err() {
                    return Ok(());
                }
            }
            ReplanPolicy::WhenIdle => match reports.try_send(report) {
                Ok(()) => {}
                Err(TrySendError::Full(report)) => {
                    if let Some(plan) = report.plan {
                        engine.recycle(plan);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return Ok(()),
            },
        }
    }
}
