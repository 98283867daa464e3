// The verification page (docs/verifier.md, "The web page"). No dependencies, no build step.
// It sends what the person chose to this node's public verification routes and shows the verdict; every
// decision is the server's (verifier.core), this script only displays it.
"use strict";

const RESULTS = {
  VALID: ["有效", "VALID", "全部核验通过，证照有效。", "Every proof checks out: the license is valid."],
  REVOKED: ["已吊销", "REVOKED", "证明有效，但该证照已被吊销或注销。", "The proofs hold, but the license is revoked."],
  SUSPENDED: ["已暂停", "SUSPENDED", "证明有效，但该证照已暂停执业。", "The proofs hold, but the license is suspended."],
  SUPERSEDED: ["已被新版本取代", "SUPERSEDED", "证明成立，但这是旧版本：该证照已有更新的版本，请出示最新电子证照。", "The proofs hold, but this is an old version: a newer version of the license supersedes it."],
  INVALID: ["核验未通过", "INVALID", "证明不成立，不能作为有效证照。", "A proof failed: do not rely on this license."],
  UNDECIDED: ["无法判定", "UNDECIDED", "证明成立，但检查点过旧，当前状态未知。", "The proofs hold, but the checkpoint is too old to tell the status now."],
};
const STEPS = {
  1: ["证明文件格式", "bundle"],
  2: ["签发方与密钥", "issuer and keys"],
  3: ["电子印章与承诺值", "seal and commitment"],
  4: ["证照在批次中", "leaf in batch"],
  5: ["批次在账本日志中", "batch in log"],
  6: ["检查点多方签署", "checkpoint cosigned"],
  7: ["证照状态", "status"],
  8: ["时效", "freshness"],
};
const STATUS = {
  active: ["有效", "active"],
  reinstated: ["有效（已恢复）", "active (reinstated)"],
  suspended: ["暂停执业", "suspended"],
  revoked: ["已吊销", "revoked"],
};
const KINDS = {
  physician: ["医师执业证书", "physician license"],
  nurse: ["护士执业证书", "nurse license"],
  institution: ["医疗机构执业许可证", "medical institution license"],
};
const MAX_UPLOAD = 900 * 1024;

const $ = (id) => document.getElementById(id);

function show(section) {
  for (const id of ["busy", "error", "result"]) $(id).hidden = id !== section;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function bilingual(cell, zh, en) {
  cell.textContent = "";
  cell.append(document.createTextNode(zh));
  if (en) {
    cell.append(" ");
    cell.append(el("span", "en", en));
  }
}

function when(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function holderText(holder) {
  if (!holder) return null;
  return Object.entries(holder)
    .map(([k, v]) => `${{ name: "姓名", sex: "性别", citizen_id: "证件号" }[k] || k} ${v}`)
    .join("，");
}

function render(answer) {
  const s = answer.summary;
  const r = RESULTS[s.result] || RESULTS.INVALID;
  const banner = $("banner");
  banner.className = "banner result-" + s.result.toLowerCase();
  banner.dataset.result = s.result;
  $("banner-zh").textContent = r[0];
  $("banner-en").textContent = r[1];
  const failed = s.failed_step;
  const why = $("banner-why");
  bilingual(why, r[2], r[3]);
  if (failed && failed.ok === false && (s.result === "INVALID" || s.result === "SUPERSEDED")) {
    const name = STEPS[failed.number] || ["", failed.name];
    why.append(el("div", "failed", `✗ 第 ${failed.number} 步 ${name[0]} (${name[1]}): ${failed.reason} — ${failed.detail}`));
  }

  const issuer = s.issuer || {};
  const province = issuer.province_zh ? `${issuer.province_zh}（${issuer.province}）` : issuer.province || "—";
  const authority = issuer.authority || (issuer.authority_uscc ? `统一社会信用代码 ${issuer.authority_uscc}` : "");
  bilingual($("f-issuer"), s.proven ? `${province} ${authority}` : `声称：${province}（未证实）`,
    s.proven ? (issuer.province_en || "") : "claimed, not proven");
  const holder = holderText(s.holder);
  bilingual($("f-holder"), holder || "未披露（仅承诺值）", holder ? "masked" : "not disclosed (commitment only)");
  const kind = KINDS[s.kind] || [s.kind || "—", ""];
  bilingual($("f-kind"), kind[0], kind[1]);
  const statusCell = $("f-status");
  statusCell.textContent = "";
  if (s.proven && s.status) {
    const st = STATUS[s.status] || [s.status, s.status];
    const badge = el("span", "status status-" + s.status, `${st[0]} · ${st[1]}`);
    badge.id = "status-badge";
    statusCell.append(badge);
    if (s.status_reason) statusCell.append(el("span", "reason", ` 原因 reason ${s.status_reason}，${when(s.status_effective_ms)}`));
  } else {
    statusCell.append(el("span", "status status-unknown", "未证实 · not proven"));
  }
  $("f-id").textContent = s.license_id || "—";
  bilingual($("f-checkpoint"),
    s.checkpoint_timestamp_ms ? `${when(s.checkpoint_timestamp_ms)}，日志规模 ${s.checkpoint_tree_size}，${s.cosigners.length} 方签署（${s.cosigners.join("、")}）` : "—",
    s.checkpoint_timestamp_ms ? `tree_size ${s.checkpoint_tree_size}, cosigned by ${s.cosigners.length}` : "");

  const list = $("steps");
  list.textContent = "";
  for (const step of answer.steps) {
    const mark = step.ok === true ? "✓" : step.ok === false ? "✗" : "–";
    const state = step.ok === true ? "ok" : step.ok === false ? "fail" : "skip";
    const item = el("li", "step step-" + state);
    item.dataset.step = String(step.number);
    item.append(el("span", "mark", mark));
    const body = el("div", "step-body");
    const name = STEPS[step.number] || [step.name, step.name];
    const title = el("div", "step-name", `${step.number}. ${name[0]} `);
    title.append(el("span", "en", name[1]));
    if (step.reason) title.append(el("code", "reason-code", step.reason));
    body.append(title);
    body.append(el("div", "step-detail", step.detail));
    item.append(body);
    list.append(item);
  }
  show("result");
}

function fail(status, body) {
  const box = $("error");
  box.textContent = "";
  let detail = body && body.detail ? body.detail : `HTTP ${status}`;
  const zh = {
    400: "请求有误", 404: "未找到", 413: "文件过大", 422: "文件无法识别或格式错误", 425: "证明尚未就绪，请稍后再试",
    429: "请求过于频繁，请稍后再试", 503: "账本暂不可用，请稍后再试",
  }[status] || "核验失败";
  box.append(el("strong", null, `${zh} · `));
  box.append(document.createTextNode(detail));
  if (body && body.errors) {
    const list = el("ul");
    for (const [path, problem] of Object.entries(body.errors)) list.append(el("li", "mono", `${path}: ${problem}`));
    box.append(list);
  }
  show("error");
}

async function post(path, body, type) {
  show("busy");
  try {
    const response = await fetch(path, { method: "POST", body, headers: { "Content-Type": type } });
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (!response.ok) return fail(response.status, answer);
    render(answer);
  } catch (e) {
    fail(0, { detail: "无法连接本节点 · cannot reach this node" });
  }
}

async function shrink(file) {
  if (file.size <= MAX_UPLOAD || typeof createImageBitmap !== "function") return file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function handle(file) {
  if (!file) return;
  const isJson = file.type === "application/json" || /\.json$/i.test(file.name);
  if (isJson) {
    await post("/v1/public/verify", await file.text(), "application/json");
  } else {
    const image = await shrink(file);
    await post("/v1/public/verify/qr", image, image.type || "application/octet-stream");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = $("file");
  input.addEventListener("change", () => handle(input.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    handle(e.dataTransfer.files[0]);
  });
  // a license ID, or a license version's commitment (64 hex digits: SM3(salt || document))
  const lookup = (text) => JSON.stringify(/^[0-9a-fA-F]{64}$/.test(text) ? { commitment: text } : { license_id: text });
  $("by-id").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("license-id").value.trim();
    if (id) post("/v1/public/verify", lookup(id), "application/json");
  });
  const given = new URLSearchParams(location.search).get("id");
  if (given) {
    $("license-id").value = given;
    post("/v1/public/verify", lookup(given), "application/json");
  }
});
