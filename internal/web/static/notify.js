// Reaching a person who is not looking at the tab (issue 19): system
// notifications (the browser's Notification API) for 1:1 and group
// messages while the page is hidden or on another chat, and for every
// alert post always (requireInteraction); a siren for alerts and a softer
// sound for messages (Web Audio); the unread count in the tab's title and
// favicon; and the settings screen. The settings are kept by the node
// (GET/PUT /api/v1/settings), so they survive a browser change. The
// permission prompt is only ever offered from a button (after
// onboarding, and in the settings), never on page load.
import { S, h, $, toast, errText, openDialog, openChat } from "./app.js";
import { t, setLang, lang, languages, langName } from "./i18n.js";
import { openRoom } from "./groups.js";
import { mediaSettings, fileLabel } from "./media.js";

const DEFAULTS = { notifyMessages: true, notifyGroups: true, notifyAlerts: true, showText: true,
  soundMessages: true, soundAlerts: true, readReceipts: true, language: "", muted: {} };
let settings = { ...DEFAULTS };
let rerender = () => {};
const loadedAt = Date.now();
const GAP = 3000; // least time between two notifications of one chat
const HOUR = 3600 * 1000;
const FOREVER = "9999-01-01T00:00:00Z";

// sound is the page's audio state, read by the browser tests.
export const sound = { last: "", plays: 0, state: "none" };
window.samizdatSound = sound;
// handled counts the message events looked at (the browser tests wait on
// it before checking that a muted chat made no notification).
const stats = { handled: 0 };
window.samizdatNotify = stats;

// initNotify reads the node's settings (their language wins over this
// browser's) and arms the audio for the first user gesture.
export async function initNotify(render) {
  rerender = render;
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, () => audio(), { once: true, capture: true });
  // The header's language menu changes a language the node keeps too.
  document.addEventListener("change", (ev) => {
    if (ev.target.id === "lang" && settings.language && settings.language !== ev.target.value) save({ language: ev.target.value });
  });
  try {
    settings = { ...DEFAULTS, ...(await S.api.settings()) };
  } catch (_) { return; }
  if (settings.language && settings.language !== lang()) {
    localStorage.setItem("samizdat.lang", settings.language);
    setLang(settings.language);
    rerender();
  }
}

const away = () => document.hidden || !document.hasFocus();
const muted = (kind, id) => {
  const until = settings.muted && settings.muted[kind + ":" + id];
  return !!until && new Date(until) > Date.now();
};
const supported = () => "Notification" in window;

// ---------- events

// notifyEvent looks at every event of the node (app.js onEvent).
export function notifyEvent(e) {
  const done = () => { stats.handled++; };
  if (e.type === "message" && e.state === "received") onMessage(e).catch(() => {}).finally(done);
  else if (e.type === "group" && e.group && !e.messageId) onGroup(e.group).catch(() => {}).finally(done);
  else if (e.type === "request" && e.state === "new") { onRequest(e); done(); }
}

// onRequest: a stranger's first message (a contact request) notifies
// while the page is away, with the message sound; never with the
// stranger's text or name, which nobody vouched for.
function onRequest(e) {
  if (!away()) return; // the request list at the top of the chats shows it
  play("message");
  if (!settings.notifyMessages) return;
  show(t("requestNote"), { body: t("requestNoteBody"), tag: "request:" + e.contactId }, () => {});
}

async function onMessage(e) {
  const chats = await S.api.chats();
  const c = chats.find((x) => x.contact.id === e.contactId);
  if (!c || muted("chat", c.contact.accountId)) return;
  if (!away() && S.current && S.current.id === e.contactId) return;
  const text = c.last && c.last.id === e.messageId ? c.last.body : "";
  ring("chat:" + c.contact.accountId, settings.notifyMessages, c.contact.name, text, c.unread, () => openChat(c.contact));
}

const groupSeq = new Map();
async function onGroup(id) {
  const known = groupSeq.has(id);
  const r = await S.api.groupMessages(id, groupSeq.get(id) || 0);
  let last = groupSeq.get(id) || 0;
  const fresh = [];
  for (const m of r.messages) {
    last = Math.max(last, m.seq);
    if (!m.outgoing && (known || new Date(m.at) >= loadedAt - 1000)) fresh.push(m);
  }
  groupSeq.set(id, last);
  if (!fresh.length || muted("group", id)) return;
  if (!away() && S.group && S.group.id === id) return;
  const m = fresh[fresh.length - 1];
  ring("group:" + id, settings.notifyGroups, r.group.name, m.senderName + ": " + (m.text || fileLabel(m)), fresh.length, () => openRoom("group", id), m.senderName);
}

// ring shows a chat's notification (one per chat: a newer one replaces
// it, and at most one every GAP, the rest collapsed into the next) and
// plays the message sound.
const chatState = new Map(); // tag → {at, n, timer, args}
function ring(tag, on, title, text, n, open, from) {
  const st = chatState.get(tag) || { at: 0, n: 0, timer: 0 };
  chatState.set(tag, st);
  st.n += 1;
  st.args = { on, title, text, unread: n, open, from };
  if (st.timer) return;
  const wait = st.at + GAP - Date.now();
  if (wait > 0) {
    st.timer = setTimeout(() => { st.timer = 0; fire(tag, st); }, wait);
    return;
  }
  fire(tag, st);
}

function fire(tag, st) {
  const { on, title, text, unread, open, from } = st.args;
  const n = Math.max(st.n, unread || 0);
  st.at = Date.now();
  st.n = 0;
  play("message");
  if (!on) return;
  let body = t("newMessage");
  if (settings.showText && text) body = text;
  else if (from) body = t("newMessageFrom", { name: from });
  if (n > 1) body = t("newMessagesN", { n }) + " · " + body;
  show(title, { body, tag }, open);
}

// notifyAlert is called for every alert post queued for the alert
// dialog (groups.js): a notification that stays until it is dealt with,
// whatever the page shows, and the siren.
export function notifyAlert(channel, post) {
  play("alert");
  if (!settings.notifyAlerts) return;
  show("⚠ " + t("alertFrom", { name: channel.name }), {
    body: post.text, tag: "alert:" + channel.id + ":" + post.seq, requireInteraction: true, renotify: false,
  }, () => openRoom("channel", channel.id));
}

const open = new Map(); // tag → Notification
function show(title, opts, onOpen) {
  if (!supported() || Notification.permission !== "granted") return;
  let n;
  try {
    open.get(opts.tag)?.close();
    n = new Notification(title, { lang: lang(), dir: "auto", ...opts });
  } catch (_) { return; }
  open.set(opts.tag, n);
  n.onclick = () => {
    window.focus();
    n.close();
    onOpen();
  };
  n.onclose = () => { if (open.get(opts.tag) === n) open.delete(opts.tag); };
}

// ---------- sounds

let ctx = null;
function audio() {
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return null;
  if (!ctx) ctx = new AC();
  if (ctx.state === "suspended") ctx.resume().then(() => { sound.state = ctx.state; }, () => {});
  sound.state = ctx.state;
  return ctx;
}

let lastMsgSound = 0;
function play(kind) {
  if (!(kind === "alert" ? settings.soundAlerts : settings.soundMessages)) return;
  if (kind === "message") {
    if (Date.now() - lastMsgSound < GAP) return;
    lastMsgSound = Date.now();
  }
  const a = audio();
  if (!a) return;
  sound.last = kind;
  sound.plays++;
  const t0 = a.currentTime + 0.02;
  const gain = a.createGain();
  gain.connect(a.destination);
  const osc = a.createOscillator();
  osc.connect(gain);
  if (kind === "alert") {
    // A two-tone siren, loud and unlike any message sound: 2.4 s.
    osc.type = "sawtooth";
    gain.gain.setValueAtTime(0.25, t0);
    for (let i = 0; i < 8; i++) osc.frequency.setValueAtTime(i % 2 ? 660 : 960, t0 + i * 0.3);
    gain.gain.setValueAtTime(0.25, t0 + 2.3);
    gain.gain.linearRampToValueAtTime(0, t0 + 2.4);
    osc.start(t0);
    osc.stop(t0 + 2.4);
  } else {
    // Two soft rising notes.
    osc.type = "sine";
    osc.frequency.setValueAtTime(660, t0);
    osc.frequency.setValueAtTime(880, t0 + 0.1);
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.08, t0 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.25);
    osc.start(t0);
    osc.stop(t0 + 0.26);
  }
}

// ---------- the tab's title and icon

let painted = "";
export function paintTitle() {
  const n = S.chats.reduce((a, c) => a + (c.unread || 0), 0) + S.fresh.size;
  const alert = !!$("#alert-dlg")?.open;
  document.title = (alert ? "⚠ " + t("alert") + " — " : "") + (n ? "(" + n + ") " : "") + "samizdat";
  const key = n + (alert ? "!" : "");
  if (key === painted) return;
  painted = key;
  const link = document.querySelector("link[rel=icon]");
  if (!link) return;
  if (!n && !alert) { link.href = "data:,"; return; }
  const c = document.createElement("canvas");
  c.width = c.height = 32;
  const g = c.getContext("2d");
  if (!g) return;
  g.fillStyle = alert ? "#c62828" : "#1565c0";
  g.beginPath();
  g.arc(16, 16, 15, 0, 2 * Math.PI);
  g.fill();
  g.fillStyle = "#fff";
  g.font = "bold 18px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText(alert ? "!" : n > 99 ? "99" : String(n), 16, 17);
  link.href = c.toDataURL("image/png");
}

// ---------- permission

// permissionBlock offers to turn notifications on (from a button: the
// browser asks the user then) or says where to re-enable them.
export function permissionBlock() {
  const box = h("div", { id: "notify-perm", class: "notify-perm" });
  const paint = () => {
    if (!supported()) return box.replaceChildren(h("p", { class: "muted" }, t("notifyUnsupported")));
    const p = Notification.permission;
    if (p === "granted") return box.replaceChildren(h("p", { class: "muted", id: "notify-on" }, t("notifyGranted")));
    if (p === "denied") return box.replaceChildren(h("p", { class: "error", id: "notify-denied" }, t("notifyDenied")));
    box.replaceChildren(h("p", {}, t("notifyOffer")),
      h("button", { id: "notify-enable", type: "button", class: "primary", onclick: async () => {
        audio(); // this click also lets the page play sounds
        try { await Notification.requestPermission(); } catch (_) { /* answered below */ }
        paint();
      } }, t("notifyEnable")));
  };
  paint();
  return box;
}

// ---------- settings screen

async function save(patch) {
  try {
    settings = { ...DEFAULTS, ...(await S.api.putSettings(patch)) };
  } catch (e) {
    toast(errText(e));
  }
}

export function settingsButton() {
  return h("button", { id: "settings-btn", class: "icon", "aria-label": t("settings"), title: t("settings"), onclick: showSettings }, "⚙");
}

function check(key, label) {
  return h("label", { class: "radio check" },
    h("input", { type: "checkbox", id: "set-" + key, checked: !!settings[key],
      onchange: (ev) => save({ [key]: ev.target.checked }) }), label);
}

export async function showSettings() {
  try { settings = { ...DEFAULTS, ...(await S.api.settings()) }; } catch (_) { /* the last known */ }
  const mutes = h("ul", { id: "mutes", class: "mutes" });
  const names = () => {
    const m = new Map();
    for (const c of S.chats) m.set("chat:" + c.contact.accountId, c.contact.name);
    for (const g of S.groups) m.set("group:" + g.id, g.name);
    return m;
  };
  const paintMutes = () => {
    const nm = names();
    const keys = Object.keys(settings.muted || {}).filter((k) => new Date(settings.muted[k]) > Date.now());
    mutes.replaceChildren(...keys.map((k) => h("li", { class: "row" },
      h("span", { dir: "auto" }, nm.get(k) || k),
      h("span", { class: "muted" }, settings.muted[k].startsWith("9999") ? t("muteForever") : t("mutedUntil", { time: new Date(settings.muted[k]).toLocaleString(lang()) })),
      h("button", { type: "button", "data-unmute": k, onclick: async () => {
        const m = { ...settings.muted };
        delete m[k];
        await save({ muted: m });
        paintMutes();
      } }, t("unmute")))));
  };
  const target = h("select", { id: "mute-chat", "aria-label": t("muteChat") },
    [...names()].map(([k, name]) => h("option", { value: k }, name)));
  const howLong = h("select", { id: "mute-for", "aria-label": t("muteFor") },
    [["1", t("mute1h")], ["8", t("mute8h")], ["168", t("mute1w")], ["0", t("muteForever")]].map(([v, l]) => h("option", { value: v }, l)));
  const lsel = h("select", { id: "set-language", "aria-label": t("language"), onchange: async () => {
    await save({ language: lsel.value });
    const l = lsel.value || localStorage.getItem("samizdat.lang") || lang();
    localStorage.setItem("samizdat.lang", l);
    setLang(l);
    $("#dlg").close();
    rerender();
    showSettings();
  } }, [h("option", { value: "" }, t("langBrowser")), ...languages.map((l) => h("option", { value: l, lang: l, selected: settings.language === l }, langName(l)))]);
  openDialog(t("settings"),
    h("div", { id: "settings", class: "settings" },
      h("h3", {}, t("notifications")),
      permissionBlock(),
      check("notifyMessages", t("setNotifyMessages")),
      check("notifyGroups", t("setNotifyGroups")),
      check("notifyAlerts", t("setNotifyAlerts")),
      check("showText", t("setShowText")),
      h("h3", {}, t("sounds")),
      check("soundMessages", t("setSoundMessages")),
      check("soundAlerts", t("setSoundAlerts")),
      h("h3", {}, t("muteChats")),
      h("p", { class: "muted" }, t("muteNote")),
      mutes,
      h("div", { class: "row" }, target, howLong,
        h("button", { id: "mute-btn", type: "button", disabled: target.options.length === 0, onclick: async () => {
          const hrs = Number(howLong.value);
          const until = hrs ? new Date(Date.now() + hrs * HOUR).toISOString() : FOREVER;
          await save({ muted: { ...settings.muted, [target.value]: until } });
          paintMutes();
        } }, t("mute"))),
      ...mediaSettings(settings, save),
      h("h3", {}, t("privacy")),
      check("readReceipts", t("setReadReceipts")),
      h("h3", {}, t("language")),
      lsel));
  paintMutes();
}
