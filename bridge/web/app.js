// The Image Generator: builds a task in the reference network's JSON format,
// sends it to the bridge's /v1 API with the user's API key, follows it until
// the network delivers, and shows the verified images. No framework and no
// build step: the bridge serves this file as it is, so the page works
// offline.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "hydrogen.apiKey";
const POLL_MS = 700;

// An API key passed in the URL's fragment (`/#key=hyd_...`, what
// `scripts/run.sh --web` prints) never reaches a server log; keep it in
// this browser and drop it from the address bar.
function initKey() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("key");
  if (fromUrl) {
    localStorage.setItem(KEY_STORE, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const key = localStorage.getItem(KEY_STORE) || "";
  $("api-key").value = key;
  $("key-section").hidden = key !== "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    refreshAccount();
  });
}

function apiKey() {
  return $("api-key").value.trim();
}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the bridge answered ${status}`);
    this.status = status;
    this.code = e.code || "http_" + status;
    this.path = e.path;
  }
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        Authorization: "Bearer " + apiKey(),
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: "bridge_unreachable", message: "the bridge cannot be reached: " + e.message } });
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    throw new ApiError(response.status, data);
  }
  return type.includes("json") ? response.json() : response.blob();
}

// What an error means for the person in front of the page.
function explain(e) {
  const titles = {
    unauthenticated: "The API key was refused",
    quota_exceeded: "This API key's quota is used up",
    malformed_task: "The task is not valid JSON",
    invalid_task: "The task is invalid",
    unsupported_task: "The network cannot run this task yet",
    insufficient_funds: "Insufficient funds",
    chain_refused: "The chain refused the task",
    chain_unavailable: "The network is unreachable",
    network_error: "The network failed",
    bridge_unreachable: "The bridge is unreachable",
  };
  const title = titles[e.code] || "Error";
  return `${title}: ${e.message}` + (e.path ? `\n(at ${e.path})` : "");
}

function showError(e) {
  $("error").textContent = e ? explain(e) : "";
  $("error").hidden = !e;
}

function buildTask() {
  const number = (id) => Number($(id).value);
  const task = {
    version: "2.5.0",
    base_model: { name: $("base-model").value.trim(), variant: null },
    prompt: $("prompt").value,
    negative_prompt: $("negative-prompt").value,
    scheduler: { method: $("scheduler").value },
    task_config: {
      image_width: number("width"),
      image_height: number("height"),
      steps: number("steps"),
      cfg: number("cfg"),
      seed: number("seed"),
      num_images: number("num-images"),
      safety_checker: false,
    },
  };
  const lora = $("lora-model").value.trim();
  if (lora) task.lora = { model: lora, weight: number("lora-weight") };
  return task;
}

// Where a task is, as the four steps the page shows: queued, nodes
// selected, computing, verified.
function stageIndex(view) {
  if (view.status === "completed") return 4;
  switch (view.stage) {
    case "succeeded": return 3;
    case "running": return view.nodes.length ? 2 : 1;
    default: return 0;
  }
}

function showProgress(view) {
  $("progress").hidden = false;
  $("task-id").textContent = view.task_id == null ? view.id : `#${view.task_id}`;
  const reached = stageIndex(view);
  const failed = ["aborted", "failed", "cancelled"].includes(view.status);
  document.querySelectorAll("#stages li").forEach((li, i) => {
    li.className = i < reached ? "done" : i === reached ? (failed ? "failed" : "active") : "";
  });
  $("nodes").replaceChildren(...view.nodes.map((n) => {
    const li = document.createElement("li");
    li.textContent = "node " + n;
    return li;
  }));
  // The chain's stage only where it says more than the bridge's status.
  const stage = view.stage && view.stage !== view.status ? ` · on chain: ${view.stage}` : "";
  $("status-line").textContent = `${view.status}${stage} · fee ${view.fee_tokens}` + (view.error ? ` · ${view.error}` : "");
}

async function addToGallery(view, task) {
  for (let i = 0; i < view.images.length; i++) {
    const blob = await api("GET", view.images[i]);
    const url = URL.createObjectURL(blob);
    const name = `hydrogen-${view.task_id}-${i}.png`;
    const figure = document.createElement("figure");
    figure.className = "result";
    figure.dataset.phash = view.result[i] || "";
    const img = document.createElement("img");
    img.src = url;
    img.alt = task.prompt;
    const caption = document.createElement("figcaption");
    caption.textContent = `task #${view.task_id} · image ${i} · seed ${task.task_config.seed} · pHash ${view.result[i] || "?"} · `;
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.textContent = "download";
    caption.append(link);
    const prompt = document.createElement("div");
    prompt.textContent = task.prompt;
    caption.append(prompt);
    figure.append(img, caption);
    $("gallery").prepend(figure);
  }
}

async function follow(id, task) {
  for (;;) {
    const view = await api("GET", `/v1/tasks/${encodeURIComponent(id)}`);
    showProgress(view);
    if (view.status === "completed") {
      await addToGallery(view, task);
      return;
    }
    if (["aborted", "failed", "cancelled"].includes(view.status)) {
      throw new ApiError(0, { error: { code: "task_" + view.status, message: view.error || view.status } });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function submit(event) {
  event.preventDefault();
  showError(null);
  $("generate").disabled = true;
  try {
    const task = buildTask();
    const created = await api("POST", "/v1/tasks", task);
    showProgress({ id: created.id, task_id: created.task_id, status: created.status, stage: "queued", nodes: [], fee_tokens: created.fee });
    await follow(created.id, task);
    refreshAccount();
  } catch (e) {
    showError(e);
  } finally {
    $("generate").disabled = false;
  }
}

async function refreshAccount() {
  if (!apiKey()) return;
  try {
    const network = await api("GET", "/v1/network");
    const nodes = network.nodes;
    $("account").textContent =
      `account ${network.account} · ${network.balance_tokens} · ` +
      `${nodes.available} of ${nodes.available + nodes.busy + nodes.paused} nodes free · ` +
      `${network.queue_length} queued`;
  } catch (e) {
    $("account").textContent = explain(e);
  }
  try {
    // Models other tasks of this bridge used join the suggestions.
    const models = await api("GET", "/v1/models");
    const list = $("models");
    const known = new Set([...list.options].map((o) => o.value));
    for (const m of models.base_models) {
      if (known.has(m.id)) continue;
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = `${m.id} (${m.tasks} tasks)`;
      list.appendChild(option);
    }
  } catch (e) {
    // Suggestions only: the form works without them.
  }
}

initKey();
$("task-form").addEventListener("submit", submit);
refreshAccount();
