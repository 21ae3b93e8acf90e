//! Helpers shared by the integration tests and the benchmark: dev nodes that
//! die with the test process, and [`Network`], a freshly deployed contract
//! with its own funded keys, joined nodes and a record of expected events.
//!
//! Every test deploys its own contract and signs with its own keys
//! (`//chain-it/<test>/...`), so tests sharing one node stay independent.

pub mod bridge_process;
pub mod localnet;
pub mod nginx;
pub mod relay_process;
pub mod s3;

use futures::future::join_all;
use futures::StreamExt;
use hydrogen_sdk::chain::devnode::{node_binary, DevNode};
use hydrogen_sdk::chain::{
    account_of, keypair_from_suri, ChainClient, ChainError, ContractBundle, Deployed, Hydrogen,
    Included, Keypair, Submitted,
};
use hydrogen_sdk::types::{
    blake2_256, commitment, ticket, AccountId, Balance, Event, Hash, NodeStatus, Outcome, Params,
    TaskId, TaskInfo, TaskStatus, TaskType, UNIT,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subxt::utils::{AccountId32, MultiAddress};
use tokio::sync::{Mutex, OnceCell};

/// Native balance each test key gets for fees and storage deposits.
pub const NATIVE_FUNDS: Balance = 1_000 * UNIT;
/// Tokens minted to a network's task creator.
pub const CREATOR_TOKENS: Balance = 100 * UNIT;
/// A task fee that splits into whole units: 10, 9 and 6 by commit order.
pub const FEE: Balance = 25 * UNIT;
/// VRAM the test nodes report and tasks ask for.
pub const VRAM_GB: u32 = 24;
pub const MIN_VRAM_GB: u32 = 8;
/// The task arguments' hash in every test task.
pub const ARGS_HASH: Hash = [7; 32];

/// Whether the chain tests must run (`HYDROGEN_REQUIRE_CHAIN=1`) rather than
/// skip when the node binary or the contract bundle is missing.
pub fn chain_required() -> bool {
    std::env::var("HYDROGEN_REQUIRE_CHAIN").is_ok_and(|v| v == "1")
}

/// `$HYDROGEN_CONTRACT_BUNDLE`, else the contract's `cargo contract build` output.
pub fn bundle_path() -> PathBuf {
    std::env::var_os("HYDROGEN_CONTRACT_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../contracts-ink/target/ink/hydrogen/hydrogen.contract")
        })
}

/// `$HYDROGEN_CHAIN_SPEC`, else the repository's `chain-spec/dev-raw.json`.
pub fn chain_spec_path() -> PathBuf {
    std::env::var_os("HYDROGEN_CHAIN_SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chain-spec/dev-raw.json")
        })
}

/// Starts a dev node on the repository's chain spec (or on `--dev` when
/// there is none), killed when the handle drops.
pub async fn spawn_dev_node() -> Result<DevNode, ChainError> {
    let spec = chain_spec_path();
    if spec.exists() {
        DevNode::spawn_with_chain_spec(&spec).await
    } else {
        DevNode::spawn().await
    }
}

/// Starts a shell that stops `node` (SIGTERM, then SIGKILL after 5 s) and
/// removes its log once the returned pipe closes, which the kernel does when
/// this process exits in any way. Keep the pipe for as long as the node
/// should live.
pub fn stop_node_at_exit(node: &DevNode) -> std::io::Result<ChildStdin> {
    let mut watchdog = Command::new("sh")
        .args([
            "-c",
            r#"read -r _; kill "$1" 2>/dev/null; rm -f "$2"
               for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$1" 2>/dev/null || exit 0; sleep 0.5; done
               kill -9 "$1" 2>/dev/null"#,
            "hydrogen-devnode-watchdog",
        ])
        .arg(node.pid().to_string())
        .arg(node.log_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(watchdog.stdin.take().expect("piped stdin"))
}

/// The node every test of this process shares, with the pipe that keeps it alive.
struct SharedNode {
    node: DevNode,
    _alive: ChildStdin,
}

static SHARED: OnceCell<Result<SharedNode, String>> = OnceCell::const_new();

/// The URL of this process's shared dev node, started on first use, or
/// `None` (the test should return) when the node binary or the contract
/// bundle is missing and [`chain_required`] is not set; panics if it is.
pub async fn shared_node() -> Option<String> {
    let shared = SHARED
        .get_or_init(|| async {
            let bundle = bundle_path();
            if !bundle.exists() {
                return Err(format!("no contract bundle at {}", bundle.display()));
            }
            let node = spawn_dev_node()
                .await
                .map_err(|e| format!("{e} ({})", node_binary().display()))?;
            let alive = stop_node_at_exit(&node).map_err(|e| format!("no watchdog: {e}"))?;
            Ok(SharedNode {
                node,
                _alive: alive,
            })
        })
        .await;
    match shared {
        Ok(shared) => Some(shared.node.url().to_string()),
        Err(why) => {
            assert!(!chain_required(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// `//Alice` pays every test key's native balance; one test at a time, so
/// each test's client reads Alice's nonce fresh from the node.
static FUNDER: Mutex<()> = Mutex::const_new(());

/// Gives each of `accounts` `amount` of native balance from `//Alice`.
pub async fn fund_native(
    client: &ChainClient,
    accounts: &[AccountId],
    amount: Balance,
) -> Result<(), ChainError> {
    let alice = keypair_from_suri("//Alice")?;
    let _turn = FUNDER.lock().await;
    let transfers = accounts.iter().map(|account| {
        let call = subxt::dynamic::tx(
            "Balances",
            "transfer_keep_alive",
            (
                MultiAddress::<AccountId32, ()>::Id(AccountId32(account.0)),
                amount,
            ),
        );
        let (client, alice) = (client.clone(), alice.clone());
        async move {
            client
                .submit_extrinsic(&alice, &call, "transfer_keep_alive")
                .await
        }
    });
    for result in join_all(transfers).await {
        result?;
    }
    Ok(())
}

/// A one-image pHash result whose bytes are all `byte`.
/// The default parameters without the selection warm-up: these tests join
/// nodes and create a task at once (the contract's own tests cover the
/// warm-up).
pub fn test_params() -> Params {
    Params {
        warmup_ms: 0,
        ..Params::default()
    }
}

pub fn phash(byte: u8) -> Outcome {
    Outcome::Images(vec![byte; 8])
}

/// Milliseconds since the Unix epoch, the chain's clock on a local dev node.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// What one transaction must have emitted; see [`Network::check_events`].
#[derive(Debug, Clone)]
struct Expected {
    what: String,
    block: u64,
    extrinsic: u32,
    events: Vec<Event>,
}

/// A deployed contract with its owner, a task creator and staked nodes, all
/// fresh keys funded for this network alone.
pub struct Network {
    pub hydrogen: Hydrogen,
    pub client: ChainClient,
    /// Deployed the contract; owns it and mints.
    pub owner: Keypair,
    /// Creates the tasks; holds [`CREATOR_TOKENS`] to start with.
    pub creator: Keypair,
    pub nodes: Vec<Keypair>,
    pub params: Params,
    /// The deployment's result (weights, storage deposit, block).
    pub deployed: Deployed,
    /// Index of each node's current ticket secret.
    tickets: Vec<u64>,
    /// What each node committed to: `(task, node) -> (outcome, nonce)`.
    commitments: HashMap<(TaskId, usize), (Outcome, Hash)>,
    expected: Vec<Expected>,
}

impl Network {
    /// A network on this process's shared node with `nodes` joined nodes, or
    /// `None` when chain tests are skipped (see [`shared_node`]).
    pub async fn new(test: &str, params: Params, nodes: usize) -> Option<Network> {
        let url = shared_node().await?;
        let mut net = Network::setup(&url, test, params, nodes).await;
        for joined in net.join_all().await {
            joined.expect("join");
        }
        Some(net)
    }

    /// Funds fresh keys `//chain-it/<test>/{owner,creator,node<i>}` with
    /// native balance, deploys a contract with `params` as the owner and
    /// mints each node its stake and the creator [`CREATOR_TOKENS`]. The
    /// nodes have not joined yet.
    pub async fn setup(url: &str, test: &str, params: Params, nodes: usize) -> Network {
        let key = |name: &str| {
            keypair_from_suri(&format!("//chain-it/{test}/{name}")).expect("valid key uri")
        };
        let owner = key("owner");
        let creator = key("creator");
        let nodes: Vec<Keypair> = (0..nodes).map(|i| key(&format!("node{i}"))).collect();
        let client = ChainClient::connect(url).await.expect("connect");
        let mut accounts = vec![account_of(&owner), account_of(&creator)];
        accounts.extend(nodes.iter().map(account_of));
        fund_native(&client, &accounts, NATIVE_FUNDS)
            .await
            .expect("native funds from //Alice");

        let bundle = ContractBundle::load(bundle_path()).expect("readable bundle");
        let (hydrogen, deployed) = Hydrogen::deploy(client.clone(), &owner, &bundle, &params, 0)
            .await
            .expect("deploy");
        let mut mints = vec![(account_of(&creator), CREATOR_TOKENS)];
        mints.extend(nodes.iter().map(|n| (account_of(n), params.required_stake)));
        let mints = mints.into_iter().map(|(to, value)| {
            let (hydrogen, owner) = (hydrogen.clone(), owner.clone());
            async move { hydrogen.mint(&owner, to, value).await }
        });
        for minted in join_all(mints).await {
            minted.expect("mint");
        }
        let tickets = vec![0; nodes.len()];
        Network {
            hydrogen,
            client,
            owner,
            creator,
            nodes,
            params,
            deployed,
            tickets,
            commitments: HashMap::new(),
            expected: Vec::new(),
        }
    }

    /// Every node joins (concurrently) with [`VRAM_GB`] and its first ticket;
    /// successful joins are recorded as emitting `NodeStatusChanged(Available)`.
    pub async fn join_all(&mut self) -> Vec<Result<Submitted<()>, ChainError>> {
        let joins = (0..self.nodes.len()).map(|i| {
            let (hydrogen, signer) = (self.hydrogen.clone(), self.nodes[i].clone());
            let first = ticket(&self.secret(i, 0));
            async move {
                hydrogen
                    .join(&signer, "RTX 4090".into(), VRAM_GB, 1, first)
                    .await
            }
        });
        let results = join_all(joins).await;
        for (i, result) in results.iter().enumerate() {
            if let Ok(joined) = result {
                let available = self.status_event(i, NodeStatus::Available);
                self.expect(&format!("join node{i}"), joined, vec![available]);
            }
        }
        results
    }

    /// Node `i`'s account.
    pub fn node(&self, i: usize) -> AccountId {
        account_of(&self.nodes[i])
    }

    /// The node index of `account`.
    pub fn index_of(&self, account: &AccountId) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.node(i) == *account)
            .expect("one of this network's nodes")
    }

    pub fn creator_account(&self) -> AccountId {
        account_of(&self.creator)
    }

    /// The contract's own account, which holds stakes, escrow and the pool.
    pub fn contract(&self) -> AccountId {
        self.hydrogen.address()
    }

    /// Node `i`'s `k`-th entropy secret.
    fn secret(&self, i: usize, k: u64) -> Hash {
        let mut input = self.node(i).0.to_vec();
        input.extend_from_slice(&k.to_le_bytes());
        blake2_256(&input)
    }

    /// `NodeStatusChanged` for node `i`.
    pub fn status_event(&self, i: usize, status: NodeStatus) -> Event {
        Event::NodeStatusChanged {
            node: self.node(i),
            status,
        }
    }

    /// Token balance of `account`.
    pub async fn tokens(&self, account: AccountId) -> Balance {
        self.hydrogen.balance_of(account).await.expect("balance_of")
    }

    /// Node `i`'s registration.
    pub async fn node_status(&self, i: usize) -> (NodeStatus, Balance) {
        let info = self
            .hydrogen
            .node_info(self.node(i))
            .await
            .expect("node_info")
            .expect("registered");
        (info.status, info.stake)
    }

    pub async fn task(&self, id: TaskId) -> TaskInfo {
        self.hydrogen
            .task(id)
            .await
            .expect("task")
            .expect("task exists")
    }

    /// The creator escrows `fee` for a one-image task.
    pub async fn create_task(&self, fee: Balance) -> Result<Submitted<TaskId>, ChainError> {
        self.hydrogen
            .create_task(
                &self.creator,
                TaskType::StableDiffusion,
                ARGS_HASH,
                MIN_VRAM_GB,
                1,
                fee,
            )
            .await
    }

    /// `TaskCreated` of a task from [`Network::create_task`].
    pub fn created_event(&self, task_id: TaskId, fee: Balance) -> Event {
        Event::TaskCreated {
            task_id,
            creator: self.creator_account(),
            task_type: TaskType::StableDiffusion,
            args_hash: ARGS_HASH,
            min_vram_gb: MIN_VRAM_GB,
            num_images: 1,
            fee,
        }
    }

    /// Node `i` reveals its current ticket secret and publishes the next ticket.
    pub async fn contribute(&mut self, i: usize) -> Result<Submitted<()>, ChainError> {
        let k = self.tickets[i];
        let (secret, next) = (self.secret(i, k), ticket(&self.secret(i, k + 1)));
        let submitted = self
            .hydrogen
            .contribute_entropy(&self.nodes[i], secret, next)
            .await?;
        self.tickets[i] = k + 1;
        Ok(submitted)
    }

    /// Node `i` commits to `outcome` for `task_id` with a fresh nonce.
    pub async fn commit(
        &mut self,
        task_id: TaskId,
        i: usize,
        outcome: Outcome,
    ) -> Result<Submitted<()>, ChainError> {
        let nonce = blake2_256(&[&self.node(i).0[..], &task_id.to_le_bytes(), b"nonce"].concat());
        let hash = commitment(task_id, &self.node(i), &outcome, &nonce);
        let submitted = self.hydrogen.commit(&self.nodes[i], task_id, hash).await?;
        self.commitments.insert((task_id, i), (outcome, nonce));
        Ok(submitted)
    }

    /// Node `i` reveals what it committed to for `task_id`.
    pub async fn reveal(&self, task_id: TaskId, i: usize) -> Result<Submitted<()>, ChainError> {
        let (outcome, nonce) = self
            .commitments
            .get(&(task_id, i))
            .cloned()
            .expect("committed through Network::commit");
        self.hydrogen
            .reveal(&self.nodes[i], task_id, outcome, nonce)
            .await
    }

    /// Creates a task with `fee` and contributes entropy from nodes 0 and 1,
    /// which starts it; records the events of all three transactions and
    /// returns the task id.
    pub async fn start_task(&mut self, fee: Balance) -> TaskId {
        let created = self.create_task(fee).await.expect("create_task");
        let task_id = created.value;
        self.expect(
            "create_task",
            &created,
            vec![
                self.created_event(task_id, fee),
                self.armed_event(vec![task_id]).await,
            ],
        );
        self.ripen(task_id).await;
        task_id
    }

    /// `TasksArmed` for `tasks` with the contributors the contract designated.
    pub async fn armed_event(&self, tasks: Vec<TaskId>) -> Event {
        let contributors = self
            .hydrogen
            .entropy_contributors()
            .await
            .expect("entropy_contributors");
        Event::TasksArmed {
            tasks,
            contributors,
        }
    }

    /// The armed batch's designated nodes contribute entropy, which starts
    /// the armed `task_id`; records the expected events.
    pub async fn ripen(&mut self, task_id: TaskId) {
        let designated = self
            .hydrogen
            .entropy_contributors()
            .await
            .expect("entropy_contributors");
        assert_eq!(designated.len(), 2, "task {task_id} is armed");
        for (k, node) in designated.iter().enumerate() {
            let i = self.index_of(node);
            let contributed = self.contribute(i).await.expect("contribute_entropy");
            let mut events = vec![Event::EntropyContributed { node: *node }];
            if k == 1 {
                events.extend(self.started_events(task_id).await);
            }
            self.expect(&format!("contribute node{i}"), &contributed, events);
        }
    }

    /// The events of `task_id` starting: each selected node turns Busy and
    /// is announced with the task's deadline.
    pub async fn started_events(&self, task_id: TaskId) -> Vec<Event> {
        let task = self.task(task_id).await;
        assert_eq!(task.status, TaskStatus::Running, "task {task_id} started");
        task.nodes
            .iter()
            .flat_map(|node| {
                [
                    Event::NodeStatusChanged {
                        node: *node,
                        status: NodeStatus::Busy,
                    },
                    Event::NodeSelected {
                        task_id,
                        node: *node,
                        deadline: task.deadline,
                    },
                ]
            })
            .collect()
    }

    /// Waits until the chain's clock is past `deadline` (ms): sleeps past it,
    /// then has a block made (a remark), since the dev chain only makes
    /// blocks for transactions and dry runs read the latest block's time.
    pub async fn pass(&self, deadline: u64) {
        let now = now_ms();
        if now <= deadline {
            tokio::time::sleep(Duration::from_millis(deadline - now + 50)).await;
        }
        let remark = subxt::dynamic::tx("System", "remark", (vec![0u8],));
        self.client
            .submit_extrinsic(&self.owner, &remark, "remark")
            .await
            .expect("remark");
    }

    /// Records that `submitted` emitted exactly `events` (in any order) and
    /// checks its own event list now; [`Network::check_events`] checks the
    /// finalized stream later.
    pub fn expect<T>(&mut self, what: &str, submitted: &Submitted<T>, events: Vec<Event>) {
        assert_eq!(
            sorted(submitted.events.clone()),
            sorted(events.clone()),
            "events of {what}"
        );
        self.record(what, &submitted.included, events);
    }

    /// Records that the extrinsic `included` emitted exactly `events`.
    pub fn record(&mut self, what: &str, included: &Included, events: Vec<Event>) {
        self.expected.push(Expected {
            what: what.into(),
            block: included.block_number,
            extrinsic: included.extrinsic_index,
            events,
        });
    }

    /// Reads the contract's events from the finalized event stream, from the
    /// deployment up to the last recorded transaction, and checks that each
    /// recorded transaction emitted exactly what it was recorded with and
    /// that no other transaction emitted any. Returns the events in order.
    pub async fn check_events(&self) -> Vec<Event> {
        let from = self.deployed.included.block_number;
        let to = self.expected.iter().map(|e| e.block).max().unwrap_or(from);
        let mut stream = Box::pin(
            self.hydrogen
                .event_stream(Some(from))
                .await
                .expect("event stream"),
        );
        let mut seen: BTreeMap<(u64, u32), Vec<Event>> = BTreeMap::new();
        let mut all = Vec::new();
        while let Some(block) = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the event stream stalled")
        {
            let block = block.expect("finalized block events");
            for event in block.events {
                let extrinsic = event.extrinsic_index.expect("emitted by an extrinsic");
                seen.entry((block.block_number, extrinsic))
                    .or_default()
                    .push(event.event.clone());
                all.push(event.event);
            }
            if block.block_number >= to {
                break;
            }
        }
        for expected in &self.expected {
            let got = seen
                .remove(&(expected.block, expected.extrinsic))
                .unwrap_or_default();
            assert_eq!(
                sorted(got),
                sorted(expected.events.clone()),
                "finalized events of {} (block #{}, extrinsic {})",
                expected.what,
                expected.block,
                expected.extrinsic
            );
        }
        assert!(
            seen.is_empty(),
            "events from transactions nobody recorded: {seen:?}"
        );
        all
    }
}

/// Events in a canonical order, to compare one transaction's events without
/// depending on the order in which the contract visits the task's slots.
fn sorted(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_cached_key(|e| format!("{e:?}"));
    events
}

// ---- Tasks with real arguments (the relay's tests) ----

impl Network {
    /// The creator escrows `fee` for a task of `num_images` images whose
    /// arguments hash to `args_hash`.
    pub async fn create_task_for(
        &self,
        args_hash: Hash,
        num_images: u8,
        fee: Balance,
    ) -> Result<Submitted<TaskId>, ChainError> {
        self.hydrogen
            .create_task(
                &self.creator,
                TaskType::StableDiffusion,
                args_hash,
                MIN_VRAM_GB,
                num_images,
                fee,
            )
            .await
    }

    /// [`Network::start_task`] for a task from [`Network::create_task_for`]:
    /// creates it, has nodes 0 and 1 contribute entropy, which starts it,
    /// records the events of the three transactions and returns its id.
    pub async fn start_task_for(
        &mut self,
        args_hash: Hash,
        num_images: u8,
        fee: Balance,
    ) -> TaskId {
        let created = self
            .create_task_for(args_hash, num_images, fee)
            .await
            .expect("create_task");
        let task_id = created.value;
        let event = Event::TaskCreated {
            task_id,
            creator: self.creator_account(),
            task_type: TaskType::StableDiffusion,
            args_hash,
            min_vram_gb: MIN_VRAM_GB,
            num_images,
            fee,
        };
        let armed = self.armed_event(vec![task_id]).await;
        self.expect("create_task", &created, vec![event, armed]);
        self.ripen(task_id).await;
        task_id
    }

    /// Every selected node of `task_id` commits to `outcome` and reveals it
    /// (the second reveal decides the task, the third frees the last node);
    /// returns the designated uploader's node index. Events are not recorded.
    pub async fn succeed_task(&mut self, task_id: TaskId, outcome: Outcome) -> usize {
        let selected: Vec<usize> = self
            .task(task_id)
            .await
            .nodes
            .iter()
            .map(|n| self.index_of(n))
            .collect();
        for &i in &selected {
            self.commit(task_id, i, outcome.clone())
                .await
                .expect("commit");
        }
        for &i in &selected {
            self.reveal(task_id, i).await.expect("reveal");
        }
        let task = self.task(task_id).await;
        assert_eq!(task.status, TaskStatus::Succeeded, "task {task_id} decided");
        self.index_of(&task.uploader.expect("an uploader once succeeded"))
    }
}
