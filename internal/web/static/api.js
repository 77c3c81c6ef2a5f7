// The local API (docs/API.md): every call carries the token of this run of
// the node. The page is opened with a one-time login code in the address
// fragment (#login=…, which browsers never send to a server), exchanges it
// once for the token (POST /api/v1/login) and keeps the token in this
// tab's sessionStorage; the fragment is then removed from the address bar.
// The token itself never appears in an address, so it is on no command
// line; it changes with every start of the node.

const KEY = "samizdat.token";

export async function takeToken() {
  const m = /(?:^#|&)login=([0-9a-f]{32})(?:&|$)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    const r = await fetch("/api/v1/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: m[1] }), cache: "no-store" });
    if (r.ok) sessionStorage.setItem(KEY, (await r.json()).token);
    else if (!sessionStorage.getItem(KEY)) {
      const e = await r.json().catch(() => ({}));
      throw new APIError(r.status, e.code || "unauthorized", e.message || "");
    }
  }
  return sessionStorage.getItem(KEY) || "";
}

const seg = (parts) => parts.map(encodeURIComponent).join("/");
const gpath = (...parts) => "/api/v1/groups/" + seg(parts);
const cpath = (...parts) => "/api/v1/channels/" + seg(parts);

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class API {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const init = { method, headers: { Authorization: "Bearer " + this.token }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, "network", String(e && e.message || e));
    }
    if (!resp.ok) {
      let code = "internal", msg = resp.statusText;
      try {
        const j = await resp.json();
        code = j.code || code;
        msg = j.error || msg;
      } catch (_) { /* not JSON */ }
      throw new APIError(resp.status, code, msg);
    }
    const ct = resp.headers.get("Content-Type") || "";
    return ct.startsWith("application/json") ? resp.json() : resp.blob();
  }

  status() { return this.call("GET", "/api/v1/status"); }
  init(name, passphrase, noPassphrase) { return this.call("POST", "/api/v1/init", { name, passphrase, noPassphrase }); }
  unlock(passphrase) { return this.call("POST", "/api/v1/unlock", { passphrase }); }
  invite() { return this.call("GET", "/api/v1/invite"); }
  inviteQR(short) {
    return this.call("GET", "/api/v1/invite/qr" + (short ? "?" + new URLSearchParams({ form: "short", link: short }) : ""));
  }
  chats() { return this.call("GET", "/api/v1/chats"); }
  addContact(link, name) { return this.call("POST", "/api/v1/contacts", { link, name }); }
  verify(contact, verified) { return this.call("POST", "/api/v1/contacts/verify", { contact, verified }); }
  page(contact, before, limit) {
    const q = new URLSearchParams({ contact, before: before > 0 ? String(before) : "latest", limit: String(limit) });
    return this.call("GET", "/api/v1/messages?" + q);
  }
  after(contact, after) {
    const q = new URLSearchParams({ contact, after: String(after) });
    return this.call("GET", "/api/v1/messages?" + q);
  }
  send(contact, text) { return this.call("POST", "/api/v1/messages", { contact, text }); }
  retry(contact, id) { return this.call("POST", "/api/v1/messages/retry", { contact, id }); }
  markRead(contact, upTo) { return this.call("POST", "/api/v1/messages/read", { contact, upTo }); }
  search(q) { return this.call("GET", "/api/v1/search?" + new URLSearchParams({ q, limit: "50" })); }
  settings() { return this.call("GET", "/api/v1/settings"); }
  putSettings(patch) { return this.call("PUT", "/api/v1/settings", patch); }
  connectivity() { return this.call("GET", "/api/v1/connectivity"); }

  // Groups and channels; G and C are a group's or channel's id.
  groups() { return this.call("GET", "/api/v1/groups"); }
  createGroup(name) { return this.call("POST", "/api/v1/groups", { name }); }
  group(g) { return this.call("GET", gpath(g)); }
  groupInvite(g, contact) { return this.call("POST", gpath(g, "members"), { contact }); }
  groupRemove(g, member) { return this.call("DELETE", gpath(g, "members", member)); }
  groupLeave(g) { return this.call("POST", gpath(g, "leave")); }
  groupJoin(g) { return this.call("POST", gpath(g, "join")); }
  groupRename(g, name) { return this.call("POST", gpath(g, "rename"), { name }); }
  groupMessages(g, after) { return this.call("GET", gpath(g, "messages") + "?" + new URLSearchParams({ after: String(after) })); }
  groupSend(g, text) { return this.call("POST", gpath(g, "messages"), { text }); }
  channels() { return this.call("GET", "/api/v1/channels"); }
  createChannel(name, priv) { return this.call("POST", "/api/v1/channels", { name, private: priv }); }
  follow(link) { return this.call("POST", "/api/v1/channels/follow", { link }); }
  channelInvite(c) { return this.call("GET", cpath(c, "invite")); }
  post(c, text, alert) { return this.call("POST", cpath(c, "posts"), { text, alert }); }
  posts(c, from) { return this.call("GET", cpath(c, "posts") + "?" + new URLSearchParams({ from: String(from) })); }

  // events keeps a WebSocket to /api/v1/events open, reconnecting with
  // backoff; onOpen runs on every (re)connection so the caller re-reads
  // what it may have missed.
  events(onEvent, onOpen, onDown) {
    let delay = 250;
    let stopped = false;
    const connect = () => {
      if (stopped) return;
      const ws = new WebSocket("ws://" + location.host + "/api/v1/events", ["samizdat.v1", "samizdat.bearer." + this.token]);
      let opened = false;
      ws.onopen = () => { opened = true; delay = 250; onOpen(); };
      ws.onmessage = (e) => { try { onEvent(JSON.parse(e.data)); } catch (_) { /* ignore */ } };
      ws.onclose = () => {
        if (stopped) return;
        onDown(opened);
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 4000);
      };
    };
    connect();
    return () => { stopped = true; };
  }
}
