// samizdat web app: plain JavaScript modules, no build step. Every action
// is a call of the local API (api.js, docs/API.md); live updates come from
// the events WebSocket, and after a reconnection everything shown is read
// again, so that nothing is missed while the node restarted.
import { API, APIError, takeToken } from "./api.js";
import { t, setLang, lang, pick, languages, langName } from "./i18n.js";
import { initNotify, notifyEvent, paintTitle, settingsButton, permissionBlock } from "./notify.js";
import { devicesButton, linkThisButton, showRevoked, revokedEvent } from "./devices.js";
import { roomActions, roomItems, roomHeader, roomEvent, refreshRooms, renderRoom, closeRoom, roomSubmit, roomOpen } from "./groups.js";
import { fileView, fileLabel, fileEvent, mediaButtons, mediaShow } from "./media.js";
import { requestItems, requestEvent, refreshRequests } from "./requests.js";
import { contactEdit, contactGone } from "./contacts.js";

const PAGE = 100; // messages of a conversation read when it opens
const OLDER = 250; // messages read each time it is scrolled to the top
export const MAX_BYTES = 65536; // wire.MaxTextSize

export const $ = (sel, el = document) => el.querySelector(sel);

// h builds an element: h("button", {class: "x", onclick: f}, "text", child).
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

export const S = {
  api: null,
  me: null, // status
  chats: [],
  current: null, // contact of the open conversation
  msgs: [], // its loaded messages in display order (ascending ord; paging is by seq: minSeq, maxSeq)
  els: new Map(), // message id → element
  more: false,
  loadingOlder: false,
  view: "list", // list | chat (phone layout)
  query: "",
  conn: null, // connectivity
  wsUp: false,
  // groups and channels (groups.js)
  groups: [],
  channels: [],
  group: null, // the open group
  channel: null, // the open channel
  items: [], // its messages or posts, ascending
  fresh: new Set(), // ids of groups and channels with news not seen yet
};

// ---------- small helpers

let toastTimer;
export function toast(msg) {
  const el = $("#toast");
  el.textContent = msg;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.classList.remove("show"); el.textContent = ""; }, 7000);
}

export function errText(e) {
  if (e instanceof APIError) {
    switch (e.code) {
      case "bad_invite": return t("badInvite");
      case "invite_unreachable": return t("inviteUnreachable");
      case "invite_mismatch": return t("inviteMismatch");
      case "exists": return t("existsAny", { msg: e.message }); // a file, a profile (the add-contact form: a name)
      case "unknown_contact": return t("unknownContact");
      case "wrong_passphrase": return t("wrongPassphrase");
      case "unauthorized": return t("badToken");
      case "forbidden": return t("forbidden");
      case "network": return t("needNode");
    }
  }
  return t("error", { msg: e && e.message || String(e) });
}

export function debounce(f, ms) {
  let timer;
  return (...a) => { clearTimeout(timer); timer = setTimeout(() => f(...a), ms); };
}

// Date formats, made once per language (making one costs more than
// rendering a message).
const fmts = {};
function formats() {
  const l = lang();
  return fmts[l] ||= {
    time: new Intl.DateTimeFormat(l, { hour: "2-digit", minute: "2-digit" }),
    day: new Intl.DateTimeFormat(l, { year: "numeric", month: "long", day: "numeric" }),
  };
}
export const fmt = {
  time: (d) => formats().time.format(d),
  day: (d) => formats().day.format(d),
};

export function dayKey(m) {
  const d = new Date(m.at);
  return d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate();
}

export function dayLabel(m) {
  const d = new Date(m.at);
  const now = new Date();
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  const same = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  if (same(d, now)) return t("today");
  if (same(d, y)) return t("yesterday");
  return fmt.day(d);
}

const ticks = { queued: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };

export function initials(name) {
  return (name || "?").trim().slice(0, 1).toUpperCase();
}

// ---------- start

// A new login address pasted into this tab changes only the fragment,
// which loads nothing: start over with it.
window.addEventListener("hashchange", () => { if (/(?:^#|&)login=/.test(location.hash)) location.reload(); });

async function main() {
  setLang(localStorage.getItem("samizdat.lang") || pick(navigator.languages));
  let token;
  try {
    token = await takeToken();
  } catch (e) {
    return fatal(t("usedLogin"));
  }
  if (!token) return fatal(t("noToken"));
  S.api = new API(token);
  let st;
  try {
    st = await S.api.status();
  } catch (e) {
    return fatal(errText(e));
  }
  S.me = st;
  if (st.setup === "new") return renderOnboarding();
  if (st.setup === "locked") return renderUnlock();
  startMain();
}

function fatal(msg) {
  const root = $("#root");
  root.replaceChildren(h("div", { class: "card center-card" },
    h("h1", {}, t("appName")),
    h("p", { id: "fatal", role: "alert", class: "error" }, msg),
    langPicker(() => main())));
}

function langPicker(onChange) {
  const sel = h("select", { id: "lang", "aria-label": t("language"), class: "lang",
    onchange: () => {
      localStorage.setItem("samizdat.lang", sel.value);
      setLang(sel.value);
      onChange();
    } },
  languages.map((l) => h("option", { value: l, selected: l === lang(), lang: l }, langName(l))));
  return sel;
}

// ---------- onboarding

function renderOnboarding(err) {
  const root = $("#root");
  const passRow = h("div", { id: "ob-passrow" },
    h("label", { for: "ob-pass" }, t("passphrase")),
    h("input", { id: "ob-pass", type: "password", autocomplete: "new-password" }),
    h("label", { for: "ob-pass2" }, t("passphraseAgain")),
    h("input", { id: "ob-pass2", type: "password", autocomplete: "new-password" }));
  const errEl = h("p", { id: "ob-error", class: "error", role: "alert" }, err || "");
  const form = h("form", { class: "card onboarding", id: "onboarding", "aria-labelledby": "ob-title", novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const name = $("#ob-name").value.trim();
      const noPass = $("#ob-nopass").checked;
      const pass = $("#ob-pass").value;
      if (!name) { errEl.textContent = t("nameRequired"); $("#ob-name").focus(); return; }
      if (!noPass && (pass === "" || pass !== $("#ob-pass2").value)) { errEl.textContent = t("passMismatch"); $("#ob-pass").focus(); return; }
      const btn = $("#ob-create");
      btn.disabled = true;
      btn.textContent = t("creating");
      try {
        S.me = await S.api.init(name, noPass ? "" : pass, noPass);
        renderWelcome();
      } catch (e) {
        btn.disabled = false;
        btn.textContent = t("create");
        errEl.textContent = errText(e);
      }
    } },
  h("div", { class: "row end" }, langPicker(() => renderOnboarding())),
  h("h1", { id: "ob-title" }, t("welcome")),
  h("p", {}, t("welcomeText")),
  h("label", { for: "ob-name" }, t("yourName")),
  h("input", { id: "ob-name", required: true, maxlength: "100", autocomplete: "nickname" }),
  h("fieldset", {},
    h("legend", {}, t("protectWith")),
    h("label", { class: "radio" }, h("input", { type: "radio", name: "prot", id: "ob-withpass", checked: true, onchange: () => { passRow.hidden = false; } }), t("withPass")),
    h("label", { class: "radio" }, h("input", { type: "radio", name: "prot", id: "ob-nopass", onchange: () => { passRow.hidden = true; } }), t("noPass"))),
  passRow,
  errEl,
  h("button", { id: "ob-create", type: "submit", class: "primary" }, t("create")),
  linkThisButton(() => renderOnboarding()));
  root.replaceChildren(form);
  $("#ob-name").focus();
}

async function renderWelcome() {
  const box = h("div", { class: "card onboarding", id: "welcome" },
    h("h1", {}, t("youAreReady")),
    h("p", {}, t("shareInvite")),
    await inviteBlock(),
    permissionBlock(),
    h("button", { id: "ob-continue", class: "primary", onclick: () => startMain() }, t("continue")));
  $("#root").replaceChildren(box);
  $("#ob-continue").focus();
}

// inviteBlock shows the short invite (≤ 200 characters, a small QR code:
// the card is fetched from this node or the DHT when it is used) and,
// folded away, the full link that carries the card.
async function inviteBlock() {
  const wrap = h("div", { class: "invite" });
  const copyButton = (text, area) => h("button", { type: "button", onclick: async () => {
    try { await navigator.clipboard.writeText(text); toast(t("copied")); } catch (_) { area.select(); }
  } }, t("copy"));
  try {
    const inv = await S.api.invite();
    const png = await S.api.inviteQR(inv.short);
    const link = h("textarea", { id: "invite-link", readonly: true, rows: "4", "aria-label": t("myInvite") }, inv.short);
    const long = h("textarea", { id: "invite-long", readonly: true, rows: "3", "aria-label": t("fullLink") }, inv.link);
    wrap.append(
      h("img", { id: "invite-qr", class: "qr", src: URL.createObjectURL(png), alt: t("inviteQRAlt"), width: "240", height: "240" }),
      link,
      copyButton(inv.short, link),
      h("details", { class: "full-link" }, h("summary", {}, t("fullLink")), long, copyButton(inv.link, long)));
  } catch (e) {
    wrap.append(h("p", { class: "error", role: "alert" }, errText(e)));
  }
  return wrap;
}

function renderUnlock(err) {
  const errEl = h("p", { id: "unlock-error", class: "error", role: "alert" }, err || "");
  const form = h("form", { class: "card onboarding", id: "unlock",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        S.me = await S.api.unlock($("#unlock-pass").value);
        startMain();
      } catch (e) {
        errEl.textContent = errText(e);
      }
    } },
  h("div", { class: "row end" }, langPicker(() => renderUnlock())),
  h("h1", {}, t("unlockTitle")),
  h("p", {}, t("unlockText")),
  h("label", { for: "unlock-pass" }, t("passphrase")),
  h("input", { id: "unlock-pass", type: "password", autocomplete: "current-password" }),
  errEl,
  h("button", { type: "submit", class: "primary" }, t("unlock")));
  $("#root").replaceChildren(form);
  $("#unlock-pass").focus();
}

// ---------- main screen

let started = false;
function startMain() {
  renderShell();
  if (started) return;
  started = true;
  initNotify(renderShell);
  S.stopEvents = S.api.events(onEvent, onReconnect, (wasUp) => {
    S.wsUp = false;
    if (!$("#banner")) return; // the page shows a fatal message
    // A node restarted on a passphrase profile waits to be unlocked and
    // serves no events: ask it what it needs.
    // A restarted node has a new token: this page's is refused.
    S.api.status().then((st) => { if (st.setup && !$("#unlock")) { S.me = st; renderUnlock(); } },
      (e) => { if (e instanceof APIError && e.code === "unauthorized") { S.stopEvents(); fatal(t("restarted")); } });
    if (wasUp || !$("#banner").hidden) showBanner(true);
    else setTimeout(() => { if (!S.wsUp) showBanner(true); }, 1500);
  });
  setInterval(refreshConn, 15000);
}

function showBanner(on) {
  const b = $("#banner");
  b.hidden = !on;
  b.textContent = on ? t("offlineBanner") : "";
}

async function onReconnect() {
  S.wsUp = true;
  showBanner(false);
  try {
    S.me = await S.api.status();
    if (S.me.setup) return main();
  } catch (_) { /* shown by the calls below */ }
  await Promise.all([refreshChats(), refreshRooms(true), refreshRequests()]);
  refreshConn();
  if (S.current) {
    await fetchNew();
    await refreshStates();
  }
}

// rank orders outgoing states; an event may announce a state before the
// message it is about was read, so states seen in events are remembered
// and never undone by an older read.
const rank = { queued: 0, failed: 1, sent: 2, delivered: 3, read: 4 };
const seenState = new Map();

function onEvent(e) {
  notifyEvent(e);
  if (e.type === "revoked") return revokedEvent();
  if (e.type === "group" || e.type === "post") return roomEvent(e);
  if (e.type === "request") requestEvent(e);
  if (e.type === "file") return fileEvent(e);
  if (e.type === "subscribed") roomEvent(e);
  if (e.type === "state" && e.messageId) {
    const prev = seenState.get(e.messageId);
    if (!prev || rank[e.state] > rank[prev] || e.state === "queued") seenState.set(e.messageId, e.state);
  }
  refreshChatsSoon();
  refreshConnSoon();
  if (!S.current || e.contactId !== S.current.id) return;
  if (e.type === "state" && e.messageId && S.els.has(e.messageId)) {
    const m = S.msgs.find((x) => x.id === e.messageId && x.outgoing);
    if (m) { m.state = e.state; updateMsg(m); }
    return;
  }
  if (e.type === "message" || e.type === "state") fetchNew();
  if (e.type === "contact") refreshChats().then(() => {
    if (!S.current || e.contactId !== S.current.id) return;
    const c = S.chats.find((x) => x.contact.id === S.current.id);
    if (c) { S.current = c.contact; renderConvHeader(); } else contactGone();
  });
}

function renderShell() {
  const app = h("div", { class: "app", id: "app", "data-view": S.view },
    h("aside", { class: "side", "aria-label": t("chats") },
      h("header", { class: "bar" },
        h("h1", { class: "me", title: S.me.accountId }, S.me.name || t("appName")),
        h("button", { id: "conn-btn", class: "icon conn", "aria-label": t("connectivity"), title: t("connectivity"), onclick: showConnectivity },
          h("span", { class: "dot", id: "conn-dot", "aria-hidden": "true" })),
        h("button", { id: "invite-btn", class: "icon", "aria-label": t("myInvite"), title: t("myInvite"), onclick: showInvite }, "▦"),
        h("button", { id: "add-btn", class: "icon", "aria-label": t("addContact"), title: t("addContact"), onclick: showAddContact }, "+"),
        settingsButton(),
        devicesButton(),
        langPicker(() => { renderShell(); refreshConn(); })),
      showRevoked(),
      h("div", { class: "search", role: "search" },
        h("label", { for: "q", class: "sr" }, t("searchLabel")),
        h("input", { id: "q", type: "search", placeholder: t("searchPlaceholder"), value: S.query, oninput: (ev) => { S.query = ev.target.value; searchSoon(); } })),
      roomActions(),
      h("ul", { id: "chatlist", class: "chatlist", "aria-label": t("chats") })),
    h("section", { class: "conv", id: "conv", "aria-labelledby": "conv-title" },
      h("header", { class: "bar", id: "conv-bar" }),
      h("div", { id: "msgs", class: "msgs", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0", onscroll: onScroll }),
      h("form", { id: "composer", class: "composer", hidden: true, onsubmit: (ev) => { ev.preventDefault(); submit(); } },
        mediaButtons(),
        h("label", { for: "text", class: "sr" }, t("composer")),
        h("textarea", { id: "text", rows: "1", placeholder: t("composerPlaceholder"), onkeydown: composerKey, oninput: autosize }),
        h("label", { class: "alert-toggle", id: "alert-toggle", hidden: true },
          h("input", { type: "checkbox", id: "post-alert" }), t("alertToggle")),
        h("button", { id: "send", type: "submit", class: "primary" }, t("send")))));
  $("#root").replaceChildren(app);
  renderList();
  renderConvHeader();
  if (S.current) renderAllMsgs(true);
  else if (roomOpen()) renderRoom();
  paintConn();
}

export function setView(v) {
  S.view = v;
  const app = $("#app");
  if (app) app.dataset.view = v;
}

// ---------- chat list and search

export async function refreshChats() {
  try {
    S.chats = await S.api.chats();
  } catch (e) {
    if (S.wsUp) toast(errText(e));
    return;
  }
  if (!S.query) renderList();
}
const refreshChatsSoon = debounce(refreshChats, 120);

export function renderList() {
  paintTitle();
  const ul = $("#chatlist");
  if (!ul) return;
  if (S.query) return renderSearch();
  const rooms = roomItems(), reqs = requestItems();
  if (S.chats.length === 0 && rooms.length === 0 && reqs.length === 0) {
    ul.replaceChildren(h("li", { class: "empty" }, t("noChats")));
    return;
  }
  ul.replaceChildren(...reqs, ...S.chats.map((c) => {
    const last = c.last;
    const sel = S.current && S.current.id === c.contact.id;
    const preview = last ? (last.outgoing ? t("you") + ": " : "") + (last.body || fileLabel(last)) : "";
    return h("li", {},
      h("button", { class: "chat", "data-account": c.contact.accountId, "data-name": c.contact.name, "aria-current": sel ? "true" : undefined,
        onclick: () => openChat(c.contact) },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(c.contact.name)),
      h("span", { class: "chat-main" },
        h("span", { class: "chat-top" },
          h("span", { class: "chat-name", dir: "auto" }, c.contact.name),
          last ? h("time", { class: "chat-time" }, fmt.time(new Date(last.at))) : null),
        h("span", { class: "chat-bottom" },
          h("span", { class: "chat-last", dir: "auto" }, preview.slice(0, 120)),
          c.unread > 0 ? h("span", { class: "badge", "aria-label": t("unread", { n: c.unread }) }, String(c.unread)) : null))));
  }), ...rooms);
}

const searchSoon = debounce(async () => {
  if (!S.query.trim()) { S.query = ""; renderList(); return; }
  renderSearch();
}, 200);

async function renderSearch() {
  const q = S.query;
  let hits;
  try {
    hits = await S.api.search(q);
  } catch (e) {
    toast(errText(e));
    return;
  }
  if (q !== S.query) return;
  const ul = $("#chatlist");
  if (hits.length === 0) {
    ul.replaceChildren(h("li", { class: "empty" }, t("noResults")));
    return;
  }
  ul.replaceChildren(...hits.map((m) => h("li", {},
    h("button", { class: "chat hit", onclick: () => {
      const c = S.chats.find((x) => x.contact.id === m.contactId);
      if (c) openChat(c.contact, m.seq);
    } },
    h("span", { class: "chat-main" },
      h("span", { class: "chat-top" },
        h("span", { class: "chat-name", dir: "auto" }, m.contactName),
        h("time", { class: "chat-time" }, fmt.day(new Date(m.at)))),
      h("span", { class: "chat-last", dir: "auto" }, (m.outgoing ? t("you") + ": " : "") + m.body.slice(0, 160)))))));
}

// ---------- conversation

export function renderConvHeader() {
  const bar = $("#conv-bar");
  if (!bar) return;
  const c = S.current;
  mediaShow(!!c);
  if (!c && roomOpen()) return roomHeader(bar);
  $("#alert-toggle").hidden = true;
  if (!c) {
    bar.replaceChildren(h("h2", { id: "conv-title", class: "sr" }, t("chats")));
    $("#msgs").replaceChildren(h("p", { class: "center muted" }, S.chats.length ? "" : t("noChats")));
    $("#composer").hidden = true;
    return;
  }
  bar.replaceChildren(
    h("button", { class: "icon back", id: "back", "aria-label": t("back"), onclick: () => { setView("list"); $("#chatlist button[aria-current]")?.focus(); } }, "‹"),
    h("button", { class: "conv-title", id: "conv-title", onclick: showDetails, "aria-label": c.name + ", " + t("contactDetails") },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(c.name)),
      h("span", { dir: "auto" }, c.name),
      h("small", { class: c.verified ? "ok" : "muted" }, c.verified ? t("verified") : t("notVerified"))));
  $("#composer").hidden = false;
}

export async function openChat(contact, focusSeq) {
  closeRoom();
  S.current = contact;
  S.msgs = [];
  S.els = new Map();
  S.more = false;
  setView("chat");
  renderList();
  renderConvHeader();
  $("#msgs").replaceChildren(h("p", { class: "center muted" }, t("loading")));
  try {
    const p = await S.api.page(contact.accountId, 0, PAGE);
    if (S.current !== contact) return;
    S.msgs = p.messages;
    S.more = p.more;
    S.current = p.contact;
  } catch (e) {
    toast(errText(e));
    return;
  }
  renderConvHeader();
  renderAllMsgs(true);
  if (focusSeq) {
    while (!S.msgs.some((m) => m.seq === focusSeq) && S.more) await loadOlder(500);
    const m = S.msgs.find((x) => x.seq === focusSeq);
    const el = m && S.els.get(m.id);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.classList.add("hl");
      el.focus();
    }
  } else {
    $("#text").focus();
  }
  markRead();
}

function msgNode(m) {
  const tick = m.outgoing ? h("span", { class: "tick", "data-state": m.state, role: "img", "aria-label": t("state_" + m.state), title: t("state_" + m.state) }, ticks[m.state] || "") : null;
  const retry = m.outgoing && m.state === "failed" ? h("button", { class: "retry", onclick: () => retryMsg(m) }, t("retry")) : null;
  const el = h("div", { class: "msg " + (m.outgoing ? "out" : "in"), "data-id": m.id, "data-seq": m.seq, tabindex: "-1" },
    h("div", { class: "bubble" }, fileView(m),
      h("p", { class: "body", dir: "auto" }, m.body),
      h("span", { class: "meta" },
        h("span", { class: "sr" }, m.outgoing ? t("you") : S.current.name),
        h("time", { datetime: m.sentAt }, fmt.time(new Date(m.sentAt))), " ", tick, retry)));
  S.els.set(m.id, el);
  return el;
}

function updateMsg(m) {
  const old = S.els.get(m.id);
  if (!old) return;
  old.replaceWith(msgNode(m));
}

// build returns a block of messages with day separators, prev being the
// message shown just before it. Each page read is a block of its own, so
// that adding one lays out that block only, not the whole conversation.
function build(list, prev) {
  const frag = h("div", { class: "pg" });
  for (const m of list) {
    if (!prev || dayKey(prev) !== dayKey(m)) frag.append(h("div", { class: "day", role: "separator", "data-day": dayKey(m) }, h("span", {}, dayLabel(m))));
    frag.append(msgNode(m));
    prev = m;
  }
  return frag;
}

function olderButton() {
  return h("button", { id: "older", class: "older", hidden: !S.more, onclick: () => loadOlder(OLDER) }, t("loadOlder"));
}

function renderAllMsgs(toBottom) {
  const box = $("#msgs");
  S.els = new Map();
  if (S.msgs.length === 0) {
    box.replaceChildren(olderButton(), h("p", { class: "center muted", id: "nomsgs" }, t("noMessages")));
    return;
  }
  box.replaceChildren(olderButton(), build(S.msgs, null));
  if (toBottom) box.scrollTop = box.scrollHeight;
}

// Messages are shown in ascending ord (docs/API.md, "Display order"); pages
// are cut by seq, so the loaded range is [minSeq, maxSeq] and a late
// message (high seq, low ord) is inserted where its ord puts it.
function minSeq() { return S.msgs.reduce((a, m) => Math.min(a, m.seq), Infinity); }
function maxSeq() { return S.msgs.reduce((a, m) => Math.max(a, m.seq), 0); }
function byOrd(a, b) { return a.ord - b.ord || a.seq - b.seq; }
function inOrder(list) { return list.every((m, i) => i === 0 || byOrd(list[i - 1], m) <= 0); }

function onScroll() {
  const box = $("#msgs");
  if (box.scrollTop < 600 && S.more && !S.loadingOlder) loadOlder(OLDER);
}

async function loadOlder(n) {
  if (!S.current || S.loadingOlder || !S.more) return;
  S.loadingOlder = true;
  const contact = S.current;
  try {
    const p = await S.api.page(contact.accountId, S.msgs.length ? minSeq() : 0, n);
    if (S.current !== contact) return;
    const box = $("#msgs");
    const before = box.scrollHeight - box.scrollTop;
    const all = p.messages.concat(S.msgs);
    if (!inOrder(all)) { // a late message already shown belongs among these
      S.msgs = all.sort(byOrd);
      S.more = p.more;
      renderAllMsgs(false);
      box.scrollTop = box.scrollHeight - before;
      return;
    }
    const firstSep = box.querySelector(".day");
    const frag = build(p.messages, null);
    if (firstSep && p.messages.length && firstSep.dataset.day === dayKey(p.messages[p.messages.length - 1])) firstSep.remove();
    $("#older").after(frag);
    S.msgs = p.messages.concat(S.msgs);
    S.more = p.more;
    $("#older").hidden = !S.more;
    box.scrollTop = box.scrollHeight - before;
  } catch (e) {
    toast(errText(e));
  } finally {
    S.loadingOlder = false;
  }
}

let fetching = null;
async function fetchNew() {
  if (!S.current) return;
  if (fetching) { fetching.again = true; return; }
  fetching = { again: false };
  const contact = S.current;
  try {
    do {
      fetching.again = false;
      const last = S.msgs.length ? maxSeq() : 0;
      const conv = await S.api.after(contact.accountId, last);
      if (S.current !== contact) return;
      addMessages(conv.messages);
    } while (fetching.again);
  } catch (e) {
    if (S.wsUp) toast(errText(e));
  } finally {
    fetching = null;
  }
  markRead();
}

// addMessages shows new messages; fresh says list was read after every
// event seen so far, so its states are newer than those shown (a send's
// answer is not: the message may have been delivered before it arrived).
export function addMessages(list, fresh = true) {
  const box = $("#msgs");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const add = [];
  for (const m of list) {
    const seen = m.outgoing && seenState.get(m.id);
    if (seen && rank[seen] > rank[m.state]) m.state = seen;
    const known = S.msgs.find((x) => x.seq === m.seq);
    if (known) {
      if (fresh && known.state !== m.state) { known.state = m.state; updateMsg(known); }
      continue;
    }
    if (S.msgs.length && m.seq < maxSeq()) continue;
    add.push(m);
  }
  if (!add.length) return;
  $("#nomsgs")?.remove();
  if (!inOrder(S.msgs.concat(add))) { // a late message goes before newer ones of its sender
    const before = box.scrollHeight - box.scrollTop;
    S.msgs = S.msgs.concat(add).sort(byOrd);
    renderAllMsgs(false);
    box.scrollTop = atBottom ? box.scrollHeight : box.scrollHeight - before;
    return;
  }
  const prev = S.msgs[S.msgs.length - 1] || null;
  S.msgs.push(...add);
  box.append(build(add, prev));
  if (atBottom || add.some((m) => m.outgoing)) box.scrollTop = box.scrollHeight;
}

// refreshStates re-reads the newest page to catch state changes missed
// while disconnected.
async function refreshStates() {
  if (!S.current) return;
  try {
    const p = await S.api.page(S.current.accountId, 0, PAGE);
    for (const m of p.messages) {
      const known = S.msgs.find((x) => x.id === m.id && x.outgoing === m.outgoing);
      if (known && known.state !== m.state) { known.state = m.state; updateMsg(known); }
    }
  } catch (_) { /* next reconnect */ }
}

async function markRead() {
  if (!S.current || document.hidden) return;
  if (!S.msgs.some((m) => !m.outgoing && m.state === "received")) return;
  const upTo = maxSeq();
  try {
    await S.api.markRead(S.current.accountId, upTo);
    for (const m of S.msgs) if (!m.outgoing && m.state === "received" && m.seq <= upTo) m.state = "read";
  } catch (_) { /* unread stays shown */ }
}
document.addEventListener("visibilitychange", () => markRead());

// Escape leaves a conversation for the chat list on a phone-sized window
// (where only one of them shows); dialogs handle their own Escape.
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "Escape" || S.view !== "chat" || $("#dlg").open) return;
  if (!matchMedia("(max-width: 700px)").matches) return;
  setView("list");
  $("#chatlist button[aria-current]")?.focus();
});

function composerKey(ev) {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    submit();
  }
}

// submit sends the composer's text to the open conversation, group or
// channel.
function submit() {
  if (roomOpen()) roomSubmit();
  else send();
}

export function autosize() {
  const ta = $("#text");
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight, 160) + "px";
}

async function send() {
  const ta = $("#text");
  const text = ta.value;
  if (!text.trim() || !S.current) return;
  const n = new TextEncoder().encode(text).length;
  if (n > MAX_BYTES) {
    toast(t("tooLong", { n, max: MAX_BYTES }));
    return;
  }
  const btn = $("#send");
  btn.disabled = true;
  try {
    const m = await S.api.send(S.current.accountId, text);
    ta.value = "";
    autosize();
    addMessages([m], false);
    fetchNew();
  } catch (e) {
    toast(errText(e)); // the text stays in the composer
  } finally {
    btn.disabled = false;
    ta.focus();
  }
}

async function retryMsg(m) {
  try {
    const r = await S.api.retry(S.current.accountId, m.id);
    seenState.delete(m.id);
    m.state = r.state;
    updateMsg(m);
  } catch (e) {
    toast(errText(e));
  }
}

// ---------- dialogs

export function openDialog(title, ...body) {
  const dlg = $("#dlg");
  const back = document.activeElement;
  dlg.replaceChildren(
    h("div", { class: "dlg-head" },
      h("h2", { id: "dlg-title" }, title),
      h("button", { class: "icon", id: "dlg-close", "aria-label": t("close"), onclick: () => dlg.close() }, "×")),
    ...body);
  dlg.setAttribute("aria-labelledby", "dlg-title");
  dlg.onclose = () => { if (back && back.focus) back.focus(); };
  dlg.showModal();
  return dlg;
}

async function showInvite() {
  openDialog(t("myInvite"), h("p", {}, t("shareInvite")), await inviteBlock());
}

function showAddContact() {
  const errEl = h("p", { id: "add-error", class: "error", role: "alert" });
  const canScan = "BarcodeDetector" in window;
  const form = h("form", { id: "add-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const link = $("#add-link").value.trim();
    if (!link) { errEl.textContent = t("inviteEmpty"); return; }
    const submit = $("#add-submit");
    // A short link has no card in it: fetching it may take a while.
    if (!link.includes("?")) errEl.textContent = t("fetchingCard");
    submit.disabled = true;
    try {
      const c = await S.api.addContact(link, $("#add-name").value.trim());
      $("#dlg").close();
      toast(t("added", { name: c.name }));
      await refreshChats();
      openChat(c);
    } catch (e) {
      // Adding a contact again only refreshes its card: "exists" is a
      // name another contact has.
      errEl.textContent = e instanceof APIError && e.code === "exists"
        ? t("ctNameTaken", { name: $("#add-name").value.trim() }) : errText(e);
      $("#add-link").focus();
    } finally {
      submit.disabled = false;
    }
  } },
  h("label", { for: "add-link" }, t("pasteInvite")),
  h("textarea", { id: "add-link", rows: "4", spellcheck: "false", autocomplete: "off" }),
  canScan ? h("label", { class: "file" }, t("readQR"), h("input", { type: "file", accept: "image/*", id: "add-qr", onchange: scanQR })) : null,
  h("label", { for: "add-name" }, t("contactName")),
  h("input", { id: "add-name", maxlength: "60" }),
  errEl,
  h("button", { id: "add-submit", type: "submit", class: "primary" }, t("add")));
  openDialog(t("addContact"), form);
  $("#add-link").focus();
}

async function scanQR(ev) {
  const f = ev.target.files[0];
  if (!f) return;
  try {
    const det = new window.BarcodeDetector({ formats: ["qr_code"] });
    const codes = await det.detect(await createImageBitmap(f));
    if (!codes.length) throw new Error(t("qrNotFound"));
    $("#add-link").value = codes[0].rawValue;
  } catch (e) {
    $("#add-error").textContent = e.message || t("qrUnsupported");
  }
}

function showDetails() {
  const c = S.current;
  if (!c) return;
  openDialog(t("contactDetails"),
    h("dl", { class: "details" },
      h("dt", {}, t("contactName")), h("dd", { dir: "auto" }, c.name),
      h("dt", {}, t("accountId")), h("dd", { class: "mono", dir: "ltr" }, c.accountId),
      h("dt", {}, t("safetyNumber")), h("dd", { class: "mono safety", id: "safety", dir: "ltr" }, c.safetyNumber)),
    h("p", {}, t("safetyHelp")),
    h("p", { id: "verified-state", class: c.verified ? "ok" : "muted" }, c.verified ? t("verified") : t("notVerified")),
    h("button", { id: "verify-btn", class: "primary", onclick: async () => {
      try {
        S.current = await S.api.verify(c.accountId, !c.verified);
        $("#dlg").close();
        renderConvHeader();
        refreshChats();
      } catch (e) {
        toast(errText(e));
      }
    } }, c.verified ? t("markUnverified") : t("markVerified")),
    contactEdit(c));
}

async function refreshConn() {
  try {
    S.conn = await S.api.connectivity();
  } catch (_) {
    S.conn = null;
  }
  paintConn();
}
const refreshConnSoon = debounce(refreshConn, 500);

function paintConn() {
  const dot = $("#conn-dot");
  if (!dot) return;
  const o = S.wsUp && S.conn ? S.conn.overall : "offline";
  dot.dataset.link = o;
  $("#conn-btn").setAttribute("aria-label", t("connectivity") + ": " + t("conn_" + o));
  $("#conn-btn").title = t("conn_" + o);
}

async function showConnectivity() {
  await refreshConn();
  const c = S.conn;
  if (!c) return toast(t("needNode"));
  let mesh = null;
  try {
    mesh = (await S.api.status()).mesh || null;
  } catch (_) { /* the panel works without it */ }
  const ob = c.outbox || {};
  openDialog(t("connectivity"),
    h("p", { id: "conn-overall", class: "conn-overall", "data-link": c.overall }, t("overall_" + c.overall)),
    h("p", { class: "muted" }, t("peers", { n: c.peers }), " · ",
      t("outboxLine", { queued: ob.queued || 0, sent: ob.sent || 0, delivered: ob.delivered || 0, failed: ob.failed || 0 })),
    h("ul", { class: "conn-list", id: "conn-contacts" }, c.contacts.map((x) => h("li", { "data-link": x.link },
      h("span", { class: "dot", "data-link": x.link, "aria-hidden": "true" }),
      h("strong", { dir: "auto" }, x.name), " — ", t("conn_" + x.link),
      x.queued ? h("span", { class: "muted" }, " · " + t("waitingFor", { n: x.queued })) : null,
      x.failed ? h("span", { class: "error" }, " · " + t("failedFor", { n: x.failed })) : null))),
    h("h3", {}, t("mailboxes")),
    c.mailboxes.length === 0 ? h("p", { class: "muted" }, t("noMailboxes")) :
      h("ul", { class: "conn-list" }, c.mailboxes.map((m) => h("li", {},
        h("span", { class: "mono", dir: "ltr" }, m.peerId.slice(0, 12) + "…"), " — ",
        m.lastError ? t("mbDown", { err: m.lastError }) : (m.lastOk && !m.lastOk.startsWith("0001") ? t("mbOK") : t("mbUnchecked"))))),
    mesh ? h("section", { id: "conn-mesh" }, h("h3", {}, t("meshTitle")),
      h("p", {}, t("meshLine", { carried: mesh.carried || 0, own: mesh.own || 0 })),
      mesh.mdns ? h("p", { class: "muted" }, t("meshLan")) : null) : null);
}

main();
