// Photos, files and voice notes in a chat (docs/API.md, "files"): the
// attach button, drag and drop and pasted images upload the file as the
// body of POST /api/v1/files/upload; a voice note is recorded with
// MediaRecorder (Opus) and sent with its duration and a waveform summary
// worked out here with WebAudio. A message carrying a file shows its
// preview at once (the thumbnail travels in the message), a progress bar
// while the chunks arrive (GET /api/v1/files, read while any is on its
// way: transfers raise no events) and the full image or the player once
// the file is complete. app.js calls fileView (each message), mediaButtons
// (the composer) and mediaShow (chat or group open); groups.js calls
// fileView for group messages and channel posts, whose files are sent the
// same way (?group= or ?channel= instead of ?contact=).
import { S, $, h, toast, errText, addMessages } from "./app.js";
import { roomAdd } from "./groups.js";
import { t, lang, addStrings } from "./i18n.js";

addStrings({
  en: {
    attach: "Attach a file", record: "Record a voice note", stopRecording: "Stop and send", cancelRecording: "Cancel",
    recording: "Recording", micDenied: "The microphone is not available: {msg}", voiceNote: "Voice note, {time}",
    play: "Play", pause: "Pause", download: "Download", saveFile: "Save", sending: "Sending {name}…",
    sendFailed: "Could not send {name}: {msg}", waiting: "Not downloaded automatically", receiving: "Receiving… {pct} %",
    transferFailed: "Transfer stopped ({msg}); it is retried.", openImage: "Open the image", dropHere: "Drop to send to {name}",
    mediaSettings: "Files and photos", autoDownload: "Download received files automatically up to this size (MB, 0: every file)",
    kb: "{n} KB", mb: "{n} MB", photo: "Photo", tooBig: "it is larger than {max}, the largest file this node sends", fileNotReady: "The file is not here yet.",
    sentPct: "Delivered {pct} %", hostDepositing: "The recipient is offline: leaving it with their mailbox hosts…",
    hostDeposited: "Left with the recipient's mailbox hosts", hostOverQuota: "Too large for the recipient's mailbox hosts: it waits here until they are online",
    holdersAll: "All {n} members have it", holdersSome: "{done} of {n} members have it",
    holdersWait: "{offline} offline: it waits for them here and with the members who have it",
  },
  ru: {
    attach: "Прикрепить файл", record: "Записать голосовое сообщение", stopRecording: "Остановить и отправить", cancelRecording: "Отмена",
    recording: "Запись", micDenied: "Микрофон недоступен: {msg}", voiceNote: "Голосовое сообщение, {time}",
    play: "Воспроизвести", pause: "Пауза", download: "Скачать", saveFile: "Сохранить", sending: "Отправка {name}…",
    sendFailed: "Не удалось отправить {name}: {msg}", waiting: "Не скачано автоматически", receiving: "Получение… {pct} %",
    transferFailed: "Передача остановлена ({msg}); будет повторена.", openImage: "Открыть изображение", dropHere: "Отпустите, чтобы отправить: {name}",
    mediaSettings: "Файлы и фото", autoDownload: "Скачивать полученные файлы автоматически до этого размера (МБ, 0: все файлы)",
    kb: "{n} КБ", mb: "{n} МБ", photo: "Фото", tooBig: "он больше {max} — самого большого файла, который отправляет этот узел", fileNotReady: "Файл ещё не получен.",
    sentPct: "Доставлено {pct} %", hostDepositing: "Получатель не в сети: файл оставляется на его почтовых узлах…",
    hostDeposited: "Оставлено на почтовых узлах получателя", hostOverQuota: "Слишком большой для почтовых узлов получателя: ждёт здесь, пока получатель не появится в сети",
    holdersAll: "Есть у всех участников ({n})", holdersSome: "Есть у {done} из {n} участников",
    holdersWait: "не в сети: {offline}; файл ждёт их здесь и у участников, у которых он есть",
  },
  fa: {
    attach: "پیوست فایل", record: "ضبط پیام صوتی", stopRecording: "توقف و ارسال", cancelRecording: "لغو",
    recording: "در حال ضبط", micDenied: "میکروفون در دسترس نیست: {msg}", voiceNote: "پیام صوتی، {time}",
    play: "پخش", pause: "توقف", download: "دریافت", saveFile: "ذخیره", sending: "در حال ارسال {name}…",
    sendFailed: "ارسال {name} ممکن نشد: {msg}", waiting: "به‌طور خودکار دریافت نشد", receiving: "در حال دریافت… {pct}٪",
    transferFailed: "انتقال متوقف شد ({msg})؛ دوباره تلاش می‌شود.", openImage: "باز کردن تصویر", dropHere: "رها کنید تا برای {name} فرستاده شود",
    mediaSettings: "فایل‌ها و عکس‌ها", autoDownload: "دریافت خودکار فایل‌ها تا این اندازه (مگابایت، ۰: همه فایل‌ها)",
    kb: "{n} کیلوبایت", mb: "{n} مگابایت", photo: "عکس", tooBig: "از {max} بزرگ‌تر است، بزرگ‌ترین فایلی که این گره می‌فرستد", fileNotReady: "فایل هنوز نرسیده است.",
    sentPct: "{pct}٪ تحویل شد", hostDepositing: "گیرنده آفلاین است: فایل نزد میزبان‌های صندوق او گذاشته می‌شود…",
    hostDeposited: "نزد میزبان‌های صندوق گیرنده گذاشته شد", hostOverQuota: "برای میزبان‌های صندوق گیرنده بیش از حد بزرگ است: تا آنلاین شدن گیرنده اینجا می‌ماند",
    holdersAll: "همه {n} عضو آن را دارند", holdersSome: "{done} از {n} عضو آن را دارند",
    holdersWait: "{offline} عضو آفلاین: اینجا و نزد اعضایی که آن را دارند منتظر آن‌ها می‌ماند",
  },
});

const WAVE_BARS = 64; // levels in a voice note's waveform summary (the API takes up to 256)
const POLL_BUSY = 500; // ms between reads of the transfer list while a file is on its way
const POLL_IDLE = 3000; // … while one waits for a retry

// Per message id: the transfer as last read, and the object URL of the
// complete file once loaded (kept across re-renders of the message).
const transfers = new Map();
const urls = new Map();
const loading = new Set();

// ---------- icons (inline SVG: no emoji font is needed; the HTML parser
// puts these constant strings in the SVG namespace)

const ICONS = {
  clip: '<path d="M20.5 11.5l-8.4 8.4a5.5 5.5 0 0 1-7.8-7.8l8.8-8.8a3.7 3.7 0 0 1 5.2 5.2l-8.8 8.8a1.8 1.8 0 0 1-2.6-2.6l8.1-8.1"/>',
  mic: '<rect x="9" y="2.5" width="6" height="12" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3.5M8.5 21.5h7"/>',
  doc: '<path d="M6 2.5h8l5 5v14H6z"/><path d="M14 2.5v5h5"/>',
};

function icon(name) {
  const tpl = document.createElement("template");
  tpl.innerHTML = '<svg viewBox="0 0 24 24" width="1.2em" height="1.2em" fill="none" stroke="currentColor" stroke-width="1.8" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">' + ICONS[name] + "</svg>";
  return tpl.content.firstChild;
}

// ---------- formatting

export function fmtSize(n) {
  const nf = (v) => v.toLocaleString(lang(), { maximumFractionDigits: 1 });
  if (n < 1024 * 1024) return t("kb", { n: nf(Math.max(1, Math.round(n / 1024))) });
  return t("mb", { n: nf(n / 1024 / 1024) });
}

// fmtDuration shows ms as m:ss, rounding down (the recorder's clock);
// up says round up (a note's length: a short one is not "0:00").
export function fmtDuration(ms, up) {
  const s = Math.max(0, up ? Math.ceil(ms / 1000) : Math.floor(ms / 1000));
  const two = new Intl.NumberFormat(lang(), { minimumIntegerDigits: 2 });
  return Math.floor(s / 60).toLocaleString(lang()) + ":" + two.format(s % 60);
}

// ---------- API (the upload is an XMLHttpRequest: fetch reports no upload progress)

const filesCall = () => S.api.call("GET", "/api/v1/files");
const content = (id) => S.api.call("GET", "/api/v1/files/content?" + new URLSearchParams({ id }));
const fetchNow = (messageId) => S.api.call("POST", "/api/v1/files/fetch", { messageId });

function upload(dest, file, extra, onProgress) {
  const q = new URLSearchParams({ [dest.kind]: dest.id, name: file.name || "file" });
  if (extra.durationMs) q.set("durationMs", String(extra.durationMs));
  if (extra.waveform) q.set("waveform", b64url(extra.waveform));
  if (dest.kind === "channel" && $("#post-alert")?.checked) q.set("alert", "true");
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", "/api/v1/files/upload?" + q);
    x.setRequestHeader("Authorization", "Bearer " + S.api.token);
    if (file.type) x.setRequestHeader("Content-Type", file.type);
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      let j = {};
      try { j = JSON.parse(x.responseText); } catch (_) { /* not JSON */ }
      if (x.status === 201) resolve(j);
      else reject(new Error(j.error || x.statusText || String(x.status)));
    };
    x.onerror = () => reject(new Error(t("needNode")));
    x.send(file);
  });
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

// ---------- sending

// here is where a file goes from the open conversation: the 1:1 chat, a
// group we can write to or a channel we own; null when none is open or
// its composer is hidden (an invitation, a group we left, a channel
// followed).
export function here() {
  if (S.current) return { kind: "contact", id: S.current.accountId, key: "c:" + S.current.id, name: S.current.name };
  const composer = $("#composer");
  if (!composer || composer.hidden) return null;
  if (S.group) return { kind: "group", id: S.group.id, key: "g:" + S.group.id, name: S.group.name };
  if (S.channel?.owned) return { kind: "channel", id: S.channel.id, key: "ch:" + S.channel.id, name: S.channel.name };
  return null;
}
const showing = (c) => here()?.key === c.key;

// sendFiles uploads each file to c (the open conversation, see here),
// showing a card with its upload progress until the node answers with
// the message.
export async function sendFiles(files, extra = {}, c = here()) {
  if (!c) return;
  for (const f of files) {
    if (S.me?.maxFileSize && f.size > S.me.maxFileSize) {
      toast(t("sendFailed", { name: f.name, msg: t("tooBig", { max: fmtSize(S.me.maxFileSize) }) }));
      continue;
    }
    const bar = h("progress", { max: "1", value: "0" });
    const card = h("div", { class: "msg out uploading" },
      h("div", { class: "bubble file-card" }, h("span", { class: "file-name", dir: "auto" }, t("sending", { name: f.name })), bar));
    if (showing(c)) $("#msgs")?.append(card);
    card.scrollIntoView({ block: "end" });
    try {
      const m = await upload(c, f, extra, (p) => { bar.value = p; });
      // The sender shows its own copy at once.
      if (m.file && /^(image|audio)\//.test(m.file.mime)) urls.set(fileKey(m), URL.createObjectURL(f));
      transfers.set(fileKey(m), { state: "sending" });
      card.remove();
      if (showing(c)) c.kind === "contact" ? addMessages([m], false) : roomAdd(m);
    } catch (e) {
      card.remove();
      toast(t("sendFailed", { name: f.name, msg: e.message || String(e) }));
    }
  }
}

// The composer's buttons: attach (a hidden file input) and record.
export function mediaButtons() {
  const input = h("input", { type: "file", id: "file-input", multiple: true, hidden: true,
    onchange: (ev) => { const fs = [...ev.target.files]; ev.target.value = ""; sendFiles(fs); } });
  return [
    input,
    h("button", { type: "button", id: "attach-btn", class: "icon media-btn", "aria-label": t("attach"), title: t("attach"),
      onclick: () => input.click() }, icon("clip")),
    h("button", { type: "button", id: "record-btn", class: "icon media-btn", "aria-label": t("record"), title: t("record"),
      onclick: startRecording }, icon("mic")),
    h("span", { id: "rec-bar", class: "rec-bar", hidden: true }),
  ];
}

// mediaShow shows the buttons in a chat, a group we write to or a
// channel we own (groups.js), hides them elsewhere.
export function mediaShow(on) {
  for (const id of ["#attach-btn", "#record-btn"]) { const b = $(id); if (b) b.hidden = !on; }
  if (on) showRecBar(); // a recording running while the composer was redrawn
}

// Pasted images and dropped files go to the open chat.
document.addEventListener("paste", (ev) => {
  if (!here() || ev.target?.id !== "text") return;
  const fs = [...(ev.clipboardData?.files || [])];
  if (!fs.length) return;
  ev.preventDefault();
  sendFiles(fs.map((f, i) => f.name && f.name !== "image.png" ? f
    : new File([f], "pasted-" + stamp() + (i ? "-" + i : "") + "." + (f.type.split("/")[1] || "bin"), { type: f.type })));
});
// A file dropped anywhere never replaces the app (the browser's default);
// it is sent only with a chat open.
const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
document.addEventListener("dragover", (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  const c = here();
  if (!c) { ev.dataTransfer.dropEffect = "none"; return; }
  const conv = $("#conv");
  if (conv && !conv.classList.contains("dropping")) {
    conv.classList.add("dropping");
    conv.dataset.drop = t("dropHere", { name: c.name });
  }
});
const endDrag = () => $("#conv")?.classList.remove("dropping");
document.addEventListener("dragleave", (ev) => { if (!ev.relatedTarget) endDrag(); });
document.addEventListener("drop", (ev) => {
  endDrag();
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  if (here()) sendFiles([...ev.dataTransfer.files]);
});

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + p(d.getMonth() + 1) + p(d.getDate()) + "-" + p(d.getHours()) + p(d.getMinutes()) + p(d.getSeconds());
}

// ---------- voice notes

let rec = null; // the recording: { mr, stream, chunks, start, timer, cancelled }

function recType() {
  for (const ty of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"]) {
    if (window.MediaRecorder && MediaRecorder.isTypeSupported(ty)) return ty;
  }
  return "";
}

async function startRecording() {
  if (rec || !here()) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    toast(t("micDenied", { msg: e.message || e.name }));
    return;
  }
  const type = recType();
  const mr = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  // The note goes to the chat it was recorded in, whatever is open when it stops.
  rec = { mr, stream, chunks: [], start: performance.now(), cancelled: false, chat: here() };
  mr.ondataavailable = (e) => { if (e.data.size) rec.chunks.push(e.data); };
  mr.onstop = finishRecording;
  mr.start(250);
  rec.timer = setInterval(() => { const c = $("#rec-time"); if (c) c.textContent = fmtDuration(performance.now() - rec.start); }, 250);
  showRecBar();
  $("#rec-stop").focus();
}

// showRecBar shows the running recording's clock, Cancel and Stop in the
// composer (again after the composer is redrawn, e.g. a language change).
function showRecBar() {
  const bar = $("#rec-bar");
  if (!rec || !bar) return;
  const clock = h("span", { id: "rec-time", class: "rec-time" }, fmtDuration(performance.now() - rec.start));
  bar.replaceChildren(h("span", { class: "rec-dot", "aria-hidden": "true" }), h("span", { class: "sr" }, t("recording")), clock,
    h("button", { type: "button", id: "rec-cancel", class: "icon", "aria-label": t("cancelRecording"), title: t("cancelRecording"),
      onclick: () => stopRecording(true) }, "✕"),
    h("button", { type: "button", id: "rec-stop", class: "icon rec-stop", "aria-label": t("stopRecording"), title: t("stopRecording"),
      onclick: () => stopRecording(false) }, "■"));
  bar.hidden = false;
  $("#record-btn").hidden = true;
}

function stopRecording(cancel) {
  if (!rec) return;
  rec.cancelled = cancel;
  rec.elapsed = performance.now() - rec.start;
  rec.mr.stop();
}

async function finishRecording() {
  const r = rec;
  rec = null;
  clearInterval(r.timer);
  for (const tr of r.stream.getTracks()) tr.stop();
  const bar = $("#rec-bar");
  if (bar) { bar.hidden = true; bar.replaceChildren(); }
  const btn = $("#record-btn");
  if (btn) { btn.hidden = false; btn.focus(); }
  if (r.cancelled || !r.chunks.length) return;
  const type = r.mr.mimeType || r.chunks[0].type || "audio/webm";
  const blob = new Blob(r.chunks, { type });
  const { durationMs, waveform } = await summarise(blob, r.elapsed);
  const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
  await sendFiles([new File([blob], "voice-" + stamp() + "." + ext, { type })], { durationMs, waveform }, r.chat);
}

// summarise decodes the recording and returns its length and WAVE_BARS
// peak levels (0-255, scaled so the loudest slice is 255). A recording the
// browser cannot decode keeps the recorder's clock and no waveform.
export async function summarise(blob, fallbackMs) {
  try {
    const AC = window.AudioContext || window.webkitAudioContext;
    const ac = new AC();
    const buf = await ac.decodeAudioData(await blob.arrayBuffer());
    ac.close();
    const data = buf.getChannelData(0);
    const peaks = new Array(WAVE_BARS).fill(0);
    const per = Math.max(1, Math.floor(data.length / WAVE_BARS));
    for (let i = 0; i < WAVE_BARS; i++) {
      let p = 0;
      for (let j = i * per, end = Math.min(data.length, (i + 1) * per); j < end; j++) p = Math.max(p, Math.abs(data[j]));
      peaks[i] = p;
    }
    const top = Math.max(...peaks) || 1;
    return { durationMs: Math.round(buf.duration * 1000), waveform: peaks.map((p) => Math.round((p / top) * 255)) };
  } catch (_) {
    return { durationMs: Math.round(fallbackMs || 0), waveform: null };
  }
}

// ---------- showing files

// fileLabel names the file of a message in the chat list.
export function fileLabel(m) {
  const f = m.file;
  if (!f) return "";
  if (isImage(f)) return t("photo");
  if (isAudio(f) && f.durationMs) return t("voiceNote", { time: fmtDuration(f.durationMs, true) });
  return f.name;
}

// fileKey is the id a message's file goes by in the API: a 1:1 or group
// message's id, a channel post's hash.
export const fileKey = (m) => m.id || m.hash;

// fileView returns the attachment part of message m's bubble (a 1:1 or
// group message, a channel post), or null.
export function fileView(m) {
  const f = m.file;
  if (!f) return null;
  forgetOnSwitch();
  if (m.outgoing || !transfers.has(fileKey(m))) pollSoon(); // ours too: how far the recipient is
  if (m.outgoing && !transfers.has(fileKey(m))) transfers.set(fileKey(m), { state: "sending" });
  const box = h("div", { class: "file", "data-file": fileKey(m) });
  paintFile(box, m);
  return box;
}

// The loaded files of a chat are let go when another chat opens.
let shownChat = null;
function forgetOnSwitch() {
  const key = here()?.key || (S.group || S.channel)?.id;
  if (key === shownChat) return;
  shownChat = key;
  for (const u of urls.values()) URL.revokeObjectURL(u);
  urls.clear();
}

function isImage(f) { return /^image\/(jpeg|png|gif|webp)$/.test(f.mime.split(";")[0]); }
function isAudio(f) { return /^audio\//.test(f.mime); }

function complete(id) {
  const st = transfers.get(id)?.state;
  return st === "complete" || st === "sending";
}

function paintFile(box, m) {
  const f = m.file;
  const tr = transfers.get(fileKey(m));
  if (complete(fileKey(m)) && (isImage(f) || isAudio(f)) && !urls.has(fileKey(m))) load(fileKey(m));
  if (isImage(f)) box.replaceChildren(imageView(m));
  else if (isAudio(f)) box.replaceChildren(voiceView(m));
  else box.replaceChildren(cardView(m));
  box.append(statusView(m, tr));
}

function imageView(m) {
  const f = m.file;
  const src = urls.get(fileKey(m)) || (f.thumbnail ? "data:image/jpeg;base64," + f.thumbnail : "");
  const img = h("img", { class: "file-img" + (urls.has(fileKey(m)) ? " full" : ""), alt: f.name, src: src || undefined });
  // Keep the image's shape from the start, so the list does not jump.
  if (f.width && f.height) {
    const k = Math.min(1, 260 / f.width, 280 / f.height);
    img.width = Math.round(f.width * k);
    img.height = Math.round(f.height * k);
  }
  return h("button", { type: "button", class: "img-btn", "aria-label": t("openImage") + ": " + f.name, onclick: () => openViewer(m) }, img);
}

function voiceView(m) {
  const f = m.file;
  const audio = h("audio", { preload: "metadata", src: urls.get(fileKey(m)) || undefined });
  const levels = f.waveform && f.waveform.length ? f.waveform : new Array(32).fill(40);
  const bars = levels.map((v) => { const i = h("i"); i.style.height = Math.max(12, Math.round(v / 255 * 100)) + "%"; return i; });
  const wave = h("span", { class: "wave", "aria-hidden": "true" }, bars);
  const dur = h("span", { class: "dur" }, fmtDuration(f.durationMs || 0, true));
  const btn = h("button", { type: "button", class: "icon play", "aria-label": t("play"), title: t("play"), disabled: !urls.has(fileKey(m)),
    onclick: () => (audio.paused ? audio.play() : audio.pause()) }, "▶");
  const total = () => f.durationMs || (isFinite(audio.duration) ? audio.duration * 1000 : 0);
  audio.addEventListener("play", () => { btn.textContent = "❚❚"; btn.setAttribute("aria-label", t("pause")); });
  const stopped = () => { btn.textContent = "▶"; btn.setAttribute("aria-label", t("play")); };
  audio.addEventListener("pause", stopped);
  audio.addEventListener("ended", () => { stopped(); paint(0); dur.textContent = fmtDuration(total(), true); });
  const paint = (frac) => bars.forEach((b, i) => b.classList.toggle("on", i < frac * bars.length));
  audio.addEventListener("timeupdate", () => {
    const ms = audio.currentTime * 1000;
    if (total()) paint(ms / total());
    dur.textContent = fmtDuration(ms);
  });
  return h("div", { class: "voice", role: "group", "aria-label": t("voiceNote", { time: fmtDuration(f.durationMs || 0, true) }) }, btn, wave, dur, audio);
}

function cardView(m) {
  const f = m.file;
  const save = complete(fileKey(m)) ? h("button", { type: "button", class: "save-file", onclick: () => saveFile(m) }, t("saveFile")) : null;
  return h("div", { class: "file-card" },
    h("span", { class: "file-icon" }, icon("doc")),
    h("span", { class: "file-main" }, h("span", { class: "file-name", dir: "auto" }, f.name), h("span", { class: "muted" }, fmtSize(f.size))),
    save);
}

// sentPending: a file we sent to a contact that its recipient has not
// fetched whole from us yet, nor found at its mailbox hosts.
function sentPending(tr) {
  if (!tr.incoming && tr.group) return !tr.holders || tr.holders.done < tr.holders.members;
  return !tr.incoming && !tr.group && tr.chunksTotal > 0 && (tr.chunksServed || 0) < tr.chunksTotal && tr.hostState !== "deposited";
}

// sentStatus: where a file we sent to a contact stands — how much of it
// the recipient has fetched from us, or what its mailbox hosts did with it.
function sentStatus(tr) {
  if (tr && !tr.incoming && tr.group) return holdersStatus(tr.holders);
  if (!tr || tr.incoming || tr.group || !tr.chunksTotal || (tr.chunksServed || 0) >= tr.chunksTotal) return "";
  const note = (key) => h("div", { class: "file-status file-host" }, h("span", { class: "muted" }, t(key)));
  if (tr.hostState === "over-quota") return note("hostOverQuota");
  if (tr.hostState === "deposited") return note("hostDeposited");
  if (tr.hostState === "depositing") return note("hostDepositing");
  const pct = Math.floor(100 * (tr.chunksServed || 0) / tr.chunksTotal);
  return h("div", { class: "file-status file-sent" }, h("progress", { class: "file-progress", max: "100", value: String(pct) }),
    h("span", { class: "muted" }, t("sentPct", { pct: pct.toLocaleString(lang()) })));
}

// holdersStatus: how many of a group's members hold a file we sent to it,
// and whom it waits for (GET /api/v1/files, "holders").
function holdersStatus(hd) {
  if (!hd || !hd.members) return "";
  const n = (x) => x.toLocaleString(lang());
  let text = hd.done >= hd.members ? t("holdersAll", { n: n(hd.members) }) : t("holdersSome", { done: n(hd.done), n: n(hd.members) });
  if (hd.done < hd.members && hd.offline > 0) text += " · " + t("holdersWait", { offline: n(hd.offline) });
  return h("div", { class: "file-status file-holders" }, h("span", { class: "muted" }, text));
}

function statusView(m, tr) {
  // A file sent from another device of ours is fetched here like a received one.
  if (m.outgoing && !tr?.incoming) return sentStatus(tr);
  if (!tr || tr.state === "complete" || tr.state === "sending") return "";
  if (tr.state === "waiting") {
    return h("div", { class: "file-status" }, h("span", { class: "muted" }, t("waiting") + " · " + fmtSize(m.file.size)),
      h("button", { type: "button", class: "fetch-file", onclick: async (ev) => {
        ev.target.disabled = true;
        try { await fetchNow(fileKey(m)); transfers.set(fileKey(m), { ...tr, state: "fetching" }); repaint(fileKey(m)); pollSoon(); } catch (e) { toast(errText(e)); ev.target.disabled = false; }
      } }, t("download")));
  }
  const pct = tr.chunksTotal ? Math.floor(100 * tr.chunksDone / tr.chunksTotal) : 0;
  const bar = h("progress", { class: "file-progress", max: "100", value: String(pct) });
  if (tr.state === "failed") return h("div", { class: "file-status" }, bar, h("span", { class: "muted" }, t("transferFailed", { msg: tr.error || "" })));
  return h("div", { class: "file-status" }, bar, h("span", { class: "muted" }, t("receiving", { pct: pct.toLocaleString(lang()) })));
}

// repaint redraws the file part of a message shown in the open chat.
function repaint(id) {
  const box = document.querySelector(`.file[data-file="${CSS.escape(id)}"]`);
  const m = (S.current ? S.msgs : S.items || []).find((x) => x.file && fileKey(x) === id);
  if (box && m) paintFile(box, m);
}

async function load(id) {
  if (loading.has(id) || urls.has(id)) return;
  loading.add(id);
  try {
    const blob = await content(id);
    urls.set(id, URL.createObjectURL(blob));
    repaint(id);
    const v = $("#viewer img");
    if (v && v.dataset.id === id) v.src = urls.get(id);
  } catch (_) { /* shown as not complete; read again on the next poll */ } finally {
    loading.delete(id);
  }
}

async function saveFile(m) {
  try {
    if (!urls.has(fileKey(m))) urls.set(fileKey(m), URL.createObjectURL(await content(fileKey(m))));
    const a = h("a", { href: urls.get(fileKey(m)), download: m.file.name });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    toast(e.code === "exists" ? t("fileNotReady") : errText(e));
  }
}

// ---------- progress: the transfer list, read while files are on their way

// fileEvent: an incoming file completed or stopped (event "file").
export function fileEvent(e) {
  const old = transfers.get(e.messageId);
  transfers.set(e.messageId, { ...old, messageId: e.messageId, incoming: true, state: e.state,
    chunksDone: e.state === "complete" ? old?.chunksTotal : old?.chunksDone });
  repaint(e.messageId);
  pollSoon();
}

let pollTimer = null;
function pollSoon(ms = 50) {
  if (pollTimer) return;
  pollTimer = setTimeout(poll, ms);
}

async function poll() {
  let list = [];
  try { list = await filesCall(); } catch (_) { /* next time */ }
  pollTimer = null;
  let busy = false, idle = false;
  for (const tr of list || []) {
    const old = transfers.get(tr.messageId);
    transfers.set(tr.messageId, tr);
    if (!old || old.state !== tr.state || old.chunksDone !== tr.chunksDone || old.chunksServed !== tr.chunksServed || old.hostState !== tr.hostState || JSON.stringify(old.holders) !== JSON.stringify(tr.holders)) repaint(tr.messageId);
    if (!(S.current ? S.msgs : S.items || []).some((m) => fileKey(m) === tr.messageId)) continue;
    if (!tr.incoming) {
      idle ||= sentPending(tr); // the recipient may come and fetch it
      continue;
    }
    busy ||= tr.state === "fetching";
    idle ||= tr.state === "failed";
  }
  if (busy || idle) pollSoon(busy ? POLL_BUSY : POLL_IDLE);
}

// ---------- the image viewer: click to enlarge, Escape or a click closes

function openViewer(m) {
  closeViewer();
  const src = urls.get(fileKey(m)) || (m.file.thumbnail ? "data:image/jpeg;base64," + m.file.thumbnail : "");
  const back = document.activeElement;
  const close = h("button", { type: "button", id: "viewer-close", class: "icon", "aria-label": t("close"), title: t("close") }, "✕");
  const img = h("img", { alt: m.file.name, src: src || undefined, "data-id": fileKey(m) });
  const v = h("div", { id: "viewer", class: "viewer", role: "dialog", "aria-modal": "true", "aria-label": m.file.name, tabindex: "-1",
    onclick: () => { closeViewer(); back?.focus(); } }, close, img);
  v.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.stopPropagation(); closeViewer(); back?.focus(); } });
  document.body.append(v);
  close.focus();
  if (!urls.has(fileKey(m)) && complete(fileKey(m))) load(fileKey(m));
}

function closeViewer() { $("#viewer")?.remove(); }

// ---------- settings: the automatic download limit

export function mediaSettings(settings, save) {
  const input = h("input", { type: "number", id: "set-autoDownloadMB", min: "0", max: "2048", step: "1",
    value: String(settings.autoDownloadMB || 0), onchange: () => {
      const n = Math.max(0, Math.min(2048, Math.round(Number(input.value) || 0)));
      input.value = String(n);
      save({ autoDownloadMB: n });
    } });
  return [h("h3", {}, t("mediaSettings")), h("label", { class: "check num" }, h("span", {}, t("autoDownload")), input)];
}
