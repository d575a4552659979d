//! The wasmtime host: one engine per process, a compiled component per
//! plugin version, one live instance per (tenant, version).
//!
//! Instances live in one pooling allocator per engine, sized once
//! (`FilterEngine::new`): a tenant's active version and its candidate hold
//! a slot each. When no slot is free the call fails with
//! [`Failure::NoCapacity`], which follows the tenant's policy like any
//! failure but is not the plugin's fault, so it never counts towards
//! quarantine. A failed call says what kind of failure it was
//! ([`Failure`]): the epoch interrupt is a timeout, a refused memory growth
//! (seen by the store's limiter, not guessed from the message) is out of
//! memory, any other trap a trap.
//!
//! With `TALLY_FILTER_PERF_MAP` set in the environment the engine writes
//! `/tmp/perf-<pid>.map`, so `perf report` names plugin functions (JIT code
//! is otherwise anonymous); it costs nothing per call.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolConcurrencyLimitError, PoolingAllocationConfig, ProfilingStrategy, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};

use crate::answer::{self, Answer};
use crate::contract::{ClickBatch, Filter, FilterPre};
use crate::failure::Failure;

/// Consecutive failures after which a plugin version is quarantined.
pub const QUARANTINE_AFTER: u32 = 3;
/// Epoch ticks are this long; deadlines are counted in them.
const TICK: Duration = Duration::from_millis(10);
/// Instances the pooling allocator keeps slots for, unless configured.
pub const DEFAULT_INSTANCES: u32 = 256;
/// What one plugin may instantiate (see `FilterEngine::new`).
const CORE_INSTANCES_PER_PLUGIN: u32 = 4;
const MEMORIES_PER_PLUGIN: u32 = 2;
const TABLES_PER_PLUGIN: u32 = 4;
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter engine: {0}")]
    Engine(String),
    #[error("plugin {name}: {message}")]
    Load { name: String, message: String },
    /// The engine had no instance slot free to start it.
    #[error("plugin {name}: {message}")]
    NoCapacity { name: String, message: String },
}

/// The engine and its epoch ticker (which stops with the engine).
#[derive(Clone)]
pub struct FilterEngine {
    engine: Engine,
}

impl FilterEngine {
    /// An engine with slots for `instances` live plugin instances (each
    /// reserves address space for its memory, not RAM).
    pub fn new(instances: u32) -> Result<FilterEngine, FilterError> {
        // A component is several core modules: a Rust guest instantiates 3
        // (shim, main, fixup) with 1 memory and 2 tables. Each plugin gets a
        // budget of 4 / 2 / 4 and the totals are that times `instances`, so a
        // slot is one plugin whatever it is made of; a component needing more
        // fails to start (and is refused at upload).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .max_core_instances_per_component(CORE_INSTANCES_PER_PLUGIN)
            .max_memories_per_component(MEMORIES_PER_PLUGIN)
            .max_tables_per_component(TABLES_PER_PLUGIN)
            .total_core_instances(instances * CORE_INSTANCES_PER_PLUGIN)
            .total_memories(instances * MEMORIES_PER_PLUGIN)
            .total_tables(instances * TABLES_PER_PLUGIN)
            .max_memory_size(MAX_MEMORY_BYTES);
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os("TALLY_FILTER_PERF_MAP").is_some() {
            config.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| FilterError::Engine(format!("{e:#}")))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("tally-filter-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| FilterError::Engine(e.to_string()))?;
        Ok(FilterEngine { engine })
    }
}

/// What a tenant's batch gets when its filter fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Count the clicks as if the filter had kept them (and say so in metrics).
    #[default]
    Open,
    /// Refuse the request (503, Retry-After): the client sends it again.
    Closed,
}

/// What one tenant's plugin may use: memory, time per call, and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    /// Tags per batch, per click on average (at most the contract's
    /// [`answer::MAX_TAGS_PER_CLICK`]).
    pub tags_per_click: usize,
}

impl Limits {
    /// Memory and time as given; output as much as the contract allows.
    pub const fn new(memory_bytes: usize, timeout: Duration) -> Limits {
        Limits { memory_bytes, timeout, tags_per_click: answer::MAX_TAGS_PER_CLICK }
    }

    /// These limits, but no more than `max`'s.
    pub fn capped(self, max: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            timeout: self.timeout.min(max.timeout),
            tags_per_click: self.tags_per_click.min(max.tags_per_click),
        }
    }
}

struct State {
    limits: StoreLimits,
    /// The plugin asked for more memory than its limit since this was last
    /// cleared: the trap that follows is a memory failure.
    memory_refused: bool,
}

/// The plugin's limits, noting a refused memory growth on the way.
impl ResourceLimiter for State {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grown = self.limits.memory_growing(current, desired, maximum);
        self.memory_refused |= !matches!(grown, Ok(true));
        grown
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// A plugin version compiled and linked against the contract, ready to
/// instantiate; shared by every instance of it.
pub struct Compiled {
    pub name: String,
    engine: Engine,
    pre: FilterPre<State>,
}

impl Compiled {
    /// Compiles a component and checks it against the contract: it must
    /// export `tally:filter/filter@0.2.0`; its imports link as traps.
    pub fn new(engine: &FilterEngine, name: &str, bytes: &[u8]) -> Result<Arc<Compiled>, FilterError> {
        let err = |message: String| FilterError::Load { name: name.to_string(), message };
        let component = Component::new(&engine.engine, bytes).map_err(|e| err(format!("{e:#}")))?;
        let mut linker = Linker::<State>::new(&engine.engine);
        // The contract grants nothing: whatever a guest imports (a std guest
        // links WASI) traps if called.
        linker.define_unknown_imports_as_traps(&component).map_err(|e| err(format!("{e:#}")))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| err(format!("{e:#}")))?;
        let pre = FilterPre::new(pre).map_err(|e| err(format!("does not implement tally:filter/filter@0.2.0: {e:#}")))?;
        Ok(Arc::new(Compiled { name: name.to_string(), engine: engine.engine.clone(), pre }))
    }

    pub fn from_file(engine: &FilterEngine, path: &Path) -> Result<Arc<Compiled>, FilterError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = std::fs::read(path).map_err(|e| FilterError::Load { name: path.display().to_string(), message: e.to_string() })?;
        Compiled::new(engine, &name, &bytes)
    }
}

struct Live {
    store: Store<State>,
    filter: Filter,
}

/// One live plugin: instantiated from its [`Compiled`] version, rebuilt
/// after a failure, quarantined after repeated ones.
pub struct Plugin {
    compiled: Arc<Compiled>,
    limits: Limits,
    live: Option<Live>,
    failures_in_a_row: u32,
    quarantined: bool,
}

impl Plugin {
    /// Instantiates now: a plugin that cannot start is refused here.
    pub fn new(compiled: Arc<Compiled>, limits: Limits) -> Result<Plugin, FilterError> {
        let mut plugin = Plugin::unstarted(compiled, limits);
        let name = plugin.compiled.name.clone();
        let live = plugin.instantiate().map_err(|f| match f {
            Failure::NoCapacity(message) => FilterError::NoCapacity { name, message },
            f => FilterError::Load { name, message: f.to_string() },
        })?;
        plugin.live = Some(live);
        Ok(plugin)
    }

    /// Not instantiated yet: the first call does it (and fails with
    /// [`Failure::NoCapacity`] until a slot is free). For a compiled version
    /// that found no slot free in [`Plugin::new`]: if it then fails to start,
    /// that counts as the plugin's failure like any other.
    pub fn unstarted(compiled: Arc<Compiled>, limits: Limits) -> Plugin {
        Plugin { compiled, limits, live: None, failures_in_a_row: 0, quarantined: false }
    }

    pub fn load(engine: &FilterEngine, path: &Path, limits: Limits) -> Result<Plugin, FilterError> {
        Plugin::new(Compiled::from_file(engine, path)?, limits)
    }

    pub fn name(&self) -> &str {
        &self.compiled.name
    }

    fn instantiate(&self) -> Result<Live, Failure> {
        let limits = StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).trap_on_grow_failure(true).build();
        let mut store = Store::new(&self.compiled.engine, State { limits, memory_refused: false });
        store.limiter(|s| s);
        // Start-up code runs under the same deadline as a call.
        store.set_epoch_deadline(self.deadline_ticks());
        let filter = self.compiled.pre.instantiate(&mut store).map_err(|e| {
            if e.chain().any(|c| c.is::<PoolConcurrencyLimitError>()) {
                Failure::NoCapacity(format!("no instance slot free on this engine: {e:#}"))
            } else {
                Failure::CannotStart(format!("{e:#}"))
            }
        })?;
        Ok(Live { store, filter })
    }

    fn deadline_ticks(&self) -> u64 {
        (self.limits.timeout.as_millis() / TICK.as_millis()).max(1) as u64
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Runs the filter over a batch: a checked answer, or why not.
    pub fn run(&mut self, batch: &ClickBatch) -> Result<Answer, Failure> {
        if self.quarantined {
            return Err(Failure::Quarantined);
        }
        let result = self.call(batch);
        match &result {
            Ok(_) => self.failures_in_a_row = 0,
            // No instance was made: nothing to rebuild, nothing to blame.
            Err(f) if !f.is_plugins_doing() => {}
            Err(_) => {
                // A trapped instance cannot be entered again, and one that
                // answered nonsense may be in any state: start afresh.
                self.live = None;
                self.failures_in_a_row += 1;
                if self.failures_in_a_row >= QUARANTINE_AFTER {
                    self.quarantined = true;
                }
            }
        }
        result
    }

    fn call(&mut self, batch: &ClickBatch) -> Result<Answer, Failure> {
        if self.live.is_none() {
            self.live = Some(self.instantiate()?);
        }
        let ticks = self.deadline_ticks();
        let live = self.live.as_mut().expect("instantiated above");
        live.store.set_epoch_deadline(ticks);
        live.store.data_mut().memory_refused = false;
        let verdicts = live.filter.call_filter(&mut live.store, batch).map_err(|e| failed_call(&e, live.store.data().memory_refused))?;
        Ok(answer::check(verdicts, batch.ad_id.len(), self.limits.tags_per_click)?)
    }
}

/// What kind of failure a call's error is. Told by the trap code and the
/// limiter, never by the message (which is the engine's, for people).
fn failed_call(e: &wasmtime::Error, memory_refused: bool) -> Failure {
    let message = format!("{e:#}");
    if memory_refused {
        Failure::OutOfMemory(message)
    } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        Failure::Timeout(message)
    } else {
        Failure::Trap(message)
    }
}

/// Shared by request handlers; calls are serialized per plugin.
pub type SharedPlugin = Arc<std::sync::Mutex<Plugin>>;
