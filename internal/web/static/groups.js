// Groups and broadcast channels (docs/API.md, "Groups and channels"):
// they show in the chat list after the 1:1 chats and open in the same
// conversation pane. Alert posts of the channels we follow are shown at
// once in a dialog that must be dismissed, also when they arrive live.
import { S, h, $, MAX_BYTES, toast, errText, debounce, fmt, dayKey, dayLabel, initials, setView, renderList, renderConvHeader, openDialog, autosize } from "./app.js";
import { t, lang } from "./i18n.js";
import { notifyAlert, paintTitle } from "./notify.js";
import { fileView, mediaShow } from "./media.js";

// count says "1 member", "2 members" (Russian and Persian phrase theirs
// to suit every number).
const count = (key, n) => t(n === 1 && lang() === "en" ? key + "_one" : key, { n });

// This browser remembers which groups were joined (an invitation shows
// until then) and the last alert dismissed per channel.
const JOINED = "samizdat.joinedGroups";
const ALERTS = "samizdat.alertsSeen";
const stored = (k) => { try { return JSON.parse(localStorage.getItem(k)) || {}; } catch (_) { return {}; } };
const keep = (k, v) => localStorage.setItem(k, JSON.stringify(v));

function markJoined(id) {
  const j = stored(JOINED);
  j[id] = true;
  keep(JOINED, j);
}
const invited = (g) => !g.admin && !g.gone && !stored(JOINED)[g.id];

export const roomOpen = () => !!(S.group || S.channel);

export function closeRoom() {
  S.group = null;
  S.channel = null;
  S.items = [];
}

// ---------- list

export function roomActions() {
  return h("div", { class: "actions", role: "group", "aria-label": t("groupsAndChannels") },
    h("button", { id: "new-group-btn", type: "button", onclick: showNewGroup }, t("newGroup")),
    h("button", { id: "new-channel-btn", type: "button", onclick: showNewChannel }, t("newChannel")),
    h("button", { id: "follow-btn", type: "button", onclick: showFollow }, t("followChannel")));
}

export async function refreshRooms(checkAll) {
  try {
    [S.groups, S.channels] = await Promise.all([S.api.groups(), S.api.channels()]);
  } catch (e) {
    if (S.wsUp) toast(errText(e));
    return;
  }
  if (!S.query) renderList();
  if (S.group) {
    const g = S.groups.find((x) => x.id === S.group.id);
    if (g) { S.group = g; renderConvHeader(); }
  }
  if (checkAll) for (const c of S.channels) if (!c.owned) checkAlerts(c.id);
}
const refreshRoomsSoon = debounce(refreshRooms, 120);

function section(title, id) {
  return h("li", { class: "section", id }, h("h2", {}, title));
}

// roomItems returns the chat list's entries for groups and channels.
export function roomItems() {
  const out = [];
  const groups = S.groups.filter((g) => !g.gone || (S.group && S.group.id === g.id));
  if (groups.length) out.push(section(t("groups"), "groups-head"));
  for (const g of groups) {
    const inv = invited(g);
    const news = S.fresh.has(g.id);
    out.push(h("li", {},
      h("button", { class: "chat room", "data-group": g.id, "data-name": g.name, "aria-current": S.group && S.group.id === g.id ? "true" : undefined,
        onclick: () => openGroup(g) },
      h("span", { class: "avatar group", "aria-hidden": "true" }, initials(g.name)),
      h("span", { class: "chat-main" },
        h("span", { class: "chat-top" }, h("span", { class: "chat-name", dir: "auto" }, g.name)),
        h("span", { class: "chat-bottom" },
          h("span", { class: "chat-last" + (inv ? " invite-tag" : "") }, inv ? t("invitation") : count("members", g.members.length)),
          news ? h("span", { class: "badge", "aria-label": t("newMessages") }, "•") : null)))));
  }
  if (S.channels.length) out.push(section(t("channels"), "channels-head"));
  for (const c of S.channels) {
    const news = S.fresh.has(c.id);
    out.push(h("li", {},
      h("button", { class: "chat room", "data-channel": c.id, "data-name": c.name, "aria-current": S.channel && S.channel.id === c.id ? "true" : undefined,
        onclick: () => openChannel(c) },
      h("span", { class: "avatar channel", "aria-hidden": "true" }, initials(c.name)),
      h("span", { class: "chat-main" },
        h("span", { class: "chat-top" }, h("span", { class: "chat-name", dir: "auto" }, c.name)),
        h("span", { class: "chat-bottom" },
          h("span", { class: "chat-last" }, (c.owned ? t("yourChannel") + " · " : "") + count("posts", c.posts)),
          alerted.has(c.id) ? h("span", { class: "badge alert-badge", "aria-label": t("alert") }, "⚠") :
            news ? h("span", { class: "badge", "aria-label": t("newPosts") }, "•") : null)))));
  }
  return out;
}

// ---------- events

export function roomEvent(e) {
  refreshRoomsSoon();
  if (e.type === "subscribed") {
    // From now on no event is missed: read what came meanwhile.
    if (S.group && !invited(S.group)) fetchGroupNew();
    else if (S.channel) fetchPostsNew();
    return;
  }
  if (e.type === "group") {
    if (S.group && e.group === S.group.id) fetchGroupNew();
    else if (e.messageId || e.group) S.fresh.add(e.group);
  } else if (e.type === "post") {
    if (S.channel && e.channel === S.channel.id) fetchPostsNew();
    else S.fresh.add(e.channel);
    if (e.alert) {
      if (!(S.channel && e.channel === S.channel.id)) alerted.add(e.channel);
      checkAlerts(e.channel);
    }
  }
}

// ---------- the open group or channel

// openRoom opens a group or channel by id (a notification was clicked).
export async function openRoom(kind, id) {
  const find = () => (kind === "group" ? S.groups : S.channels).find((x) => x.id === id);
  if (!find()) await refreshRooms();
  const x = find();
  if (x) kind === "group" ? openGroup(x) : openChannel(x);
}

function open(kind, x) {
  S.current = null;
  S.group = kind === "group" ? x : null;
  S.channel = kind === "channel" ? x : null;
  S.items = [];
  S.fresh.delete(x.id);
  setView("chat");
  renderList();
  renderConvHeader();
  $("#msgs").replaceChildren(h("p", { class: "center muted" }, t("loading")));
}

async function openGroup(g) {
  open("group", g);
  if (invited(g)) return renderRoom();
  try {
    const r = await S.api.groupMessages(g.id, 0);
    if (S.group?.id !== g.id) return;
    S.group = r.group;
    S.items = r.messages;
  } catch (e) {
    toast(errText(e));
    return;
  }
  renderConvHeader();
  renderRoom();
  if (!$("#composer").hidden) $("#text").focus();
}

async function openChannel(c) {
  alerted.delete(c.id);
  open("channel", c);
  try {
    const r = await S.api.posts(c.id, 0);
    if (S.channel?.id !== c.id) return;
    S.channel = r.channel;
    S.items = r.posts;
  } catch (e) {
    toast(errText(e));
    return;
  }
  renderConvHeader();
  renderRoom();
  if (!$("#composer").hidden) $("#text").focus();
  else $("#msgs").focus();
}

export function roomHeader(bar) {
  const back = h("button", { class: "icon back", id: "back", "aria-label": t("back"), onclick: () => { setView("list"); $("#chatlist button[aria-current]")?.focus(); } }, "‹");
  if (S.group) {
    const g = S.group;
    const canWrite = !g.gone && !invited(g);
    bar.replaceChildren(back,
      h("button", { class: "conv-title", id: "conv-title", onclick: showGroupDetails, "aria-label": g.name + ", " + t("groupDetails") },
        h("span", { class: "avatar group", "aria-hidden": "true" }, initials(g.name)),
        h("span", { dir: "auto" }, g.name),
        h("small", { class: "muted" }, g.gone ? t("groupGone") : count("members", g.members.length))));
    $("#composer").hidden = !canWrite;
    $("#alert-toggle").hidden = true;
    mediaShow(canWrite);
    return;
  }
  const c = S.channel;
  bar.replaceChildren(back,
    h("span", { class: "conv-title", id: "conv-title" },
      h("span", { class: "avatar channel", "aria-hidden": "true" }, initials(c.name)),
      h("span", { dir: "auto" }, c.name),
      h("small", { class: "muted" }, c.owned ? t("yourChannel") : t("following"))),
    h("button", { id: "chan-invite-btn", type: "button", onclick: () => showChannelLink(c) }, t("channelLink")));
  $("#composer").hidden = !c.owned;
  $("#alert-toggle").hidden = !c.owned;
  mediaShow(c.owned);
}

function msgNode(m) {
  return h("div", { class: "msg " + (m.outgoing ? "out" : "in"), "data-id": m.id, "data-seq": m.seq, tabindex: "-1" },
    h("div", { class: "bubble" },
      m.outgoing ? null : h("span", { class: "sender", dir: "auto" }, m.senderName || m.sender.slice(0, 8) + "…"),
      fileView(m),
      h("p", { class: "body", dir: "auto" }, m.text),
      h("span", { class: "meta" },
        m.outgoing ? h("span", { class: "sr" }, t("you")) : null,
        h("time", { datetime: m.sentAt }, fmt.time(new Date(m.sentAt))))));
}

function postNode(p) {
  return h("article", { class: "msg in post" + (p.alert ? " alert" : ""), "data-seq": p.seq, tabindex: "-1", "aria-label": p.alert ? t("alert") : undefined },
    h("div", { class: "bubble" },
      p.alert ? h("strong", { class: "alert-tag" }, "⚠ " + t("alert")) : null,
      fileView(p),
      h("p", { class: "body", dir: "auto" }, p.text),
      h("span", { class: "meta" }, h("time", { datetime: p.at }, fmt.time(new Date(p.at))))));
}

function build(list, prev) {
  const frag = h("div", { class: "pg" });
  const node = S.group ? msgNode : postNode;
  for (const m of list) {
    if (!prev || dayKey(prev) !== dayKey(m)) frag.append(h("div", { class: "day", role: "separator", "data-day": dayKey(m) }, h("span", {}, dayLabel(m))));
    frag.append(node(m));
    prev = m;
  }
  return frag;
}

// renderRoom shows the open group's messages or the channel's posts (or
// the invitation to a group not joined yet).
export function renderRoom() {
  const box = $("#msgs");
  const g = S.group;
  if (g && invited(g)) {
    box.replaceChildren(h("div", { class: "card invite-card", id: "group-invite", role: "region", "aria-label": t("invitation") },
      h("p", {}, t("invitedTo", { name: g.name })),
      h("p", { class: "muted", dir: "auto" }, t("membersAre", { names: g.members.map((m) => m.name || m.accountId.slice(0, 8)).join(", ") })),
      h("div", { class: "row" },
        h("button", { id: "join-btn", class: "primary", onclick: () => joinGroup(g) }, t("join")),
        h("button", { id: "decline-btn", onclick: () => leaveGroup(g) }, t("decline")))));
    $("#join-btn").focus();
    return;
  }
  if (S.items.length === 0) {
    box.replaceChildren(h("p", { class: "center muted", id: "nomsgs" }, g ? t("noMessages") : t("noPosts")));
    return;
  }
  box.replaceChildren(build(S.items, null));
  box.scrollTop = box.scrollHeight;
}

// roomAdd shows a message or post just sent from here (media.js).
export const roomAdd = (item) => addItems([item]);

function addItems(list) {
  const box = $("#msgs");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const last = S.items.length ? lastSeq() : -1;
  const add = list.filter((m) => m.seq > last);
  if (!add.length) return;
  $("#nomsgs")?.remove();
  // Group messages are shown in ascending ord (docs/API.md, "Display
  // order"): a post recovered late goes before its sender's newer ones.
  const all = S.items.concat(add);
  if (S.group && all.some((m, i) => i > 0 && all[i - 1].ord > m.ord)) {
    const before = box.scrollHeight - box.scrollTop;
    S.items = all.sort((a, b) => a.ord - b.ord || a.seq - b.seq);
    box.replaceChildren(build(S.items, null));
    box.scrollTop = atBottom ? box.scrollHeight : box.scrollHeight - before;
    return;
  }
  const prev = S.items[S.items.length - 1] || null;
  S.items.push(...add);
  box.append(build(add, prev));
  if (atBottom || add.some((m) => m.outgoing)) box.scrollTop = box.scrollHeight;
}

// fetchNew reads what is newer than the last item shown; a call made
// while one runs makes it read once more.
let fetching = null;
async function fetchNew(read) {
  if (fetching) { fetching.again = true; return; }
  fetching = { again: false };
  const room = S.group || S.channel;
  try {
    do {
      fetching.again = false;
      const items = await read(room);
      if ((S.group || S.channel)?.id !== room.id) return;
      addItems(items);
    } while (fetching.again);
  } catch (e) {
    if (S.wsUp) toast(errText(e));
  } finally {
    fetching = null;
  }
}
const lastSeq = () => S.items.reduce((a, m) => Math.max(a, m.seq), 0); // items may be in ord order
const fetchGroupNew = () => fetchNew(async (g) => (await S.api.groupMessages(g.id, lastSeq())).messages);
const fetchPostsNew = () => fetchNew(async (c) => (await S.api.posts(c.id, S.items.length ? lastSeq() + 1 : 0)).posts);

// roomSubmit sends the composer's text to the open group, or posts it on
// the open channel (an alert if the toggle is on).
export async function roomSubmit() {
  const ta = $("#text");
  const text = ta.value;
  if (!text.trim()) return;
  const n = new TextEncoder().encode(text).length;
  if (n > MAX_BYTES) {
    toast(t("tooLong", { n, max: MAX_BYTES }));
    return;
  }
  const btn = $("#send");
  btn.disabled = true;
  try {
    const room = S.group || S.channel;
    let item;
    if (S.group) {
      item = await S.api.groupSend(room.id, text);
    } else {
      item = await S.api.post(room.id, text, $("#post-alert").checked);
      $("#post-alert").checked = false;
    }
    if ((S.group || S.channel)?.id === room.id) addItems([item]);
    ta.value = "";
    autosize();
  } catch (e) {
    toast(errText(e)); // the text stays in the composer
  } finally {
    btn.disabled = false;
    ta.focus();
  }
}

// ---------- groups

async function joinGroup(g) {
  try {
    const j = await S.api.groupJoin(g.id);
    markJoined(g.id);
    await refreshRooms();
    openGroup(j);
  } catch (e) {
    toast(errText(e));
  }
}

async function leaveGroup(g) {
  try {
    await S.api.groupLeave(g.id);
    if ($("#dlg").open) $("#dlg").close();
    toast(t("leftGroup", { name: g.name }));
    closeRoom();
    setView("list");
    await refreshRooms();
    renderConvHeader();
  } catch (e) {
    toast(errText(e));
  }
}

function contactChecks(exclude) {
  const list = S.chats.map((c) => c.contact).filter((c) => !exclude.has(c.accountId));
  if (!list.length) return h("p", { class: "muted" }, t("noContactsToInvite"));
  return h("div", { class: "checks" }, list.map((c) =>
    h("label", { class: "radio" }, h("input", { type: "checkbox", name: "invite", value: c.accountId, "data-name": c.name }), h("span", { dir: "auto" }, c.name))));
}

async function inviteChecked(g, form) {
  const failed = [];
  for (const box of form.querySelectorAll("input[name=invite]:checked")) {
    try {
      g = await S.api.groupInvite(g.id, box.value);
    } catch (e) {
      failed.push(box.dataset.name + ": " + errText(e));
    }
  }
  if (failed.length) toast(t("inviteFailed", { list: failed.join("; ") }));
  return g;
}

function showNewGroup() {
  const errEl = h("p", { id: "ng-error", class: "error", role: "alert" });
  const form = h("form", { id: "ng-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const name = $("#ng-name").value.trim();
    if (!name) { errEl.textContent = t("nameRequired"); $("#ng-name").focus(); return; }
    $("#ng-submit").disabled = true;
    try {
      let g = await S.api.createGroup(name);
      markJoined(g.id);
      g = await inviteChecked(g, form);
      $("#dlg").close();
      await refreshRooms();
      openGroup(g);
    } catch (e) {
      errEl.textContent = errText(e);
      $("#ng-submit").disabled = false;
    }
  } },
  h("label", { for: "ng-name" }, t("groupName")),
  h("input", { id: "ng-name", maxlength: "100", autocomplete: "off" }),
  h("fieldset", {}, h("legend", {}, t("inviteContacts")), contactChecks(new Set())),
  errEl,
  h("button", { id: "ng-submit", type: "submit", class: "primary" }, t("createGroup")));
  openDialog(t("newGroup"), form);
  $("#ng-name").focus();
}

function showGroupDetails() {
  const g = S.group;
  if (!g) return;
  const me = S.me.accountId;
  const canAdmin = g.admin && !g.gone;
  const again = async (p) => {
    try {
      S.group = await p;
      renderConvHeader();
      refreshRooms();
      showGroupDetails();
    } catch (e) {
      toast(errText(e));
    }
  };
  const members = h("ul", { class: "members", id: "members", "aria-label": t("membersTitle") }, g.members.map((m) => {
    const name = m.name || m.accountId.slice(0, 8) + "…";
    return h("li", { "data-account": m.accountId },
      h("span", { class: "avatar small", "aria-hidden": "true" }, initials(name)),
      h("span", { class: "member-name", dir: "auto" }, m.accountId === me ? t("you") : name),
      m.admin ? h("small", { class: "muted" }, t("admin")) : null,
      canAdmin && m.accountId !== me ? h("button", { class: "remove", type: "button", "aria-label": t("removeMember", { name }),
        onclick: () => again(S.api.groupRemove(g.id, m.accountId)) }, t("remove")) : null);
  }));
  const adminPart = canAdmin ? [
    h("form", { id: "rename-form", onsubmit: (ev) => {
      ev.preventDefault();
      const name = $("#group-rename").value.trim();
      if (name) again(S.api.groupRename(g.id, name));
    } },
    h("label", { for: "group-rename" }, t("groupName")),
    h("div", { class: "row" }, h("input", { id: "group-rename", maxlength: "100", value: g.name }), h("button", { id: "rename-btn", type: "submit" }, t("rename")))),
    h("form", { id: "add-members-form", onsubmit: (ev) => {
      ev.preventDefault();
      again(inviteChecked(g, ev.target));
    } },
    h("fieldset", {}, h("legend", {}, t("inviteContacts")), contactChecks(new Set(g.members.map((m) => m.accountId)))),
    h("button", { id: "add-members-btn", type: "submit" }, t("invite"))),
  ] : [];
  openDialog(t("groupDetails"),
    h("h3", {}, t("membersTitle")),
    members,
    ...adminPart,
    g.gone ? h("p", { class: "muted" }, t("groupGone")) :
      h("button", { id: "leave-btn", class: "danger", type: "button", onclick: () => leaveGroup(g) }, t("leaveGroup")));
}

// ---------- channels

function showNewChannel() {
  const errEl = h("p", { id: "nc-error", class: "error", role: "alert" });
  const form = h("form", { id: "nc-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const name = $("#nc-name").value.trim();
    if (!name) { errEl.textContent = t("nameRequired"); $("#nc-name").focus(); return; }
    try {
      const c = await S.api.createChannel(name, $("#nc-private").checked);
      $("#dlg").close();
      await refreshRooms();
      await openChannel(c);
      showChannelLink(c);
    } catch (e) {
      errEl.textContent = errText(e);
    }
  } },
  h("label", { for: "nc-name" }, t("channelName")),
  h("input", { id: "nc-name", maxlength: "100", autocomplete: "off" }),
  h("label", { class: "radio" }, h("input", { type: "checkbox", id: "nc-private" }), t("privateChannel")),
  errEl,
  h("button", { id: "nc-submit", type: "submit", class: "primary" }, t("createChannel")));
  openDialog(t("newChannel"), form);
  $("#nc-name").focus();
}

async function showChannelLink(c) {
  let link;
  try {
    link = (await S.api.channelInvite(c.id)).link;
  } catch (e) {
    return toast(errText(e));
  }
  const ta = h("textarea", { id: "chan-link", readonly: true, rows: "4", "aria-label": t("channelLink"), dir: "ltr" }, link);
  openDialog(t("channelLink"),
    h("p", {}, t("channelLinkHelp")),
    h("div", { class: "invite" }, ta,
      h("button", { type: "button", onclick: async () => {
        try { await navigator.clipboard.writeText(link); toast(t("copied")); } catch (_) { ta.select(); }
      } }, t("copy"))));
}

function showFollow() {
  const errEl = h("p", { id: "follow-error", class: "error", role: "alert" });
  const form = h("form", { id: "follow-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const link = $("#follow-link").value.trim();
    if (!link) { errEl.textContent = t("linkEmpty"); return; }
    try {
      const c = await S.api.follow(link);
      $("#dlg").close();
      toast(t("followed", { name: c.name }));
      await refreshRooms();
      openChannel(c);
    } catch (e) {
      errEl.textContent = e.code === "bad_invite" ? t("badChannelLink") : errText(e);
      $("#follow-link").focus();
    }
  } },
  h("label", { for: "follow-link" }, t("pasteChannelLink")),
  h("textarea", { id: "follow-link", rows: "4", spellcheck: "false", autocomplete: "off", dir: "ltr" }),
  errEl,
  h("button", { id: "follow-submit", type: "submit", class: "primary" }, t("follow")));
  openDialog(t("followChannel"), form);
  $("#follow-link").focus();
}

// ---------- alerts

const DAY = 24 * 3600 * 1000;
const alerted = new Set(); // channels with an alert since they were last open
const queue = []; // {channel, post} waiting to be shown
const checking = new Set();

// checkAlerts reads a followed channel's posts after the last alert
// dismissed here and queues its alerts (those of the last day only for a
// channel this browser has never checked).
async function checkAlerts(id) {
  if (checking.has(id)) return;
  checking.add(id);
  try {
    const seen = stored(ALERTS)[id];
    const r = await S.api.posts(id, seen === undefined ? 0 : seen + 1);
    if (r.channel.owned) return;
    for (const p of r.posts) {
      if (!p.alert) continue;
      if (seen === undefined && Date.now() - new Date(p.at) > DAY) continue;
      if (queue.some((q) => q.channel.id === id && q.post.seq === p.seq)) continue;
      queue.push({ channel: r.channel, post: p });
      notifyAlert(r.channel, p);
    }
    showAlert();
  } catch (_) { /* checked again at the next event or reconnection */ } finally {
    checking.delete(id);
  }
}

function showAlert() {
  const dlg = $("#alert-dlg");
  if (dlg.open || !queue.length) return;
  const { channel, post } = queue[0];
  const back = document.activeElement;
  dlg.replaceChildren(
    h("h2", { id: "alert-title" }, "⚠ ", t("alertFrom", { name: channel.name })),
    h("p", { id: "alert-text", class: "alert-text", dir: "auto" }, post.text),
    h("p", { class: "muted" }, h("time", { datetime: post.at }, fmt.day(new Date(post.at)) + " " + fmt.time(new Date(post.at)))),
    h("div", { class: "row" },
      h("button", { id: "alert-ok", class: "primary", type: "button", onclick: () => dismiss(false) }, t("alertDismiss")),
      h("button", { id: "alert-open", type: "button", onclick: () => dismiss(true) }, t("openChannel"))));
  const dismiss = (go) => {
    queue.shift();
    const seen = stored(ALERTS);
    seen[channel.id] = Math.max(seen[channel.id] ?? -1, post.seq);
    keep(ALERTS, seen);
    dlg.close();
    paintTitle();
    if (go) {
      const c = S.channels.find((x) => x.id === channel.id) || channel;
      openChannel(c);
    } else if (back && back.focus) back.focus();
    showAlert();
  };
  // Escape does not dismiss an alert: it needs a deliberate choice.
  dlg.oncancel = (ev) => ev.preventDefault();
  document.title = "⚠ " + t("alert") + " — samizdat";
  dlg.showModal();
  $("#alert-ok").focus();
}
