// Contact requests (docs/API.md "Contact requests"): a stranger's first
// messages wait here, in no chat, until the user accepts (a contact: the
// messages move to its chat) or declines (deleted, the account refused for
// a while). Shown at the top of the chat list; the node's "request" events
// keep the list current.
import { S, h, toast, errText, debounce, fmt, initials, renderList, openDialog } from "./app.js";
import { t, extend } from "./i18n.js";

extend({
  en: {
    requests: "Requests",
    requestNote: "New contact request",
    requestNoteBody: "Someone who is not in your contacts wrote to you",
    requestFrom: "Request from {name}",
    requestExplain: "Someone who is not in your contacts wrote to you. Nothing is shown in your chats until you accept. Declining deletes this and refuses their messages for 30 days.",
    requestNoMessages: "No message yet.",
    requestAccept: "Accept",
    requestDecline: "Decline",
    requestAccepted: "{name} is now a contact.",
    requestDeclined: "Request declined.",
    requestMessages: "{n} messages",
    requestMessages_one: "1 message",
    requestAccount: "Account",
    requestSafety: "Safety number",
  },
  ru: {
    requests: "Запросы",
    requestNote: "Новый запрос на контакт",
    requestNoteBody: "Вам написал человек не из ваших контактов",
    requestFrom: "Запрос от {name}",
    requestExplain: "Вам написал человек не из ваших контактов. В чатах ничего не появится, пока вы не примете запрос. Отклонение удалит его и будет отвергать сообщения этого аккаунта 30 дней.",
    requestNoMessages: "Сообщений пока нет.",
    requestAccept: "Принять",
    requestDecline: "Отклонить",
    requestAccepted: "{name} теперь в ваших контактах.",
    requestDeclined: "Запрос отклонён.",
    requestMessages: "Сообщений: {n}",
    requestMessages_one: "Сообщений: 1",
    requestAccount: "Аккаунт",
    requestSafety: "Код безопасности",
  },
  fa: {
    requests: "درخواست‌ها",
    requestNote: "درخواست تماس جدید",
    requestNoteBody: "کسی که در مخاطبان شما نیست برایتان نوشت",
    requestFrom: "درخواست از {name}",
    requestExplain: "کسی که در مخاطبان شما نیست به شما پیام داده است. تا نپذیرید چیزی در گفتگوهایتان نشان داده نمی‌شود. رد کردن، این را پاک می‌کند و پیام‌های او را تا ۳۰ روز نمی‌پذیرد.",
    requestNoMessages: "هنوز پیامی نیست.",
    requestAccept: "پذیرفتن",
    requestDecline: "رد کردن",
    requestAccepted: "{name} اکنون مخاطب شماست.",
    requestDeclined: "درخواست رد شد.",
    requestMessages: "{n} پیام",
    requestMessages_one: "۱ پیام",
    requestAccount: "حساب",
    requestSafety: "شماره امنیتی",
  },
});

// The pending requests, oldest first (not in S: this module runs before
// app.js has made S).
let pending = [];

const count = (n) => t(n === 1 ? "requestMessages_one" : "requestMessages", { n });
const nameOf = (r) => r.name || r.accountId.slice(0, 8);

export async function refreshRequests() {
  try {
    pending = await S.api.call("GET", "/api/v1/requests");
  } catch (e) {
    if (S.wsUp) toast(errText(e));
    return;
  }
  if (!S.query) renderList();
}
const refreshRequestsSoon = debounce(refreshRequests, 120);

// requestEvent handles the node's "request" events (and "subscribed": read
// what came meanwhile).
export function requestEvent() {
  refreshRequestsSoon();
}

// requestItems returns the chat list's entries for pending requests.
export function requestItems() {
  if (!pending.length) return [];
  const out = [h("li", { class: "section", id: "requests-head" }, h("h2", {}, t("requests") + " (" + pending.length + ")"))];
  for (const r of pending) {
    const last = r.messages.length ? r.messages[r.messages.length - 1] : null;
    out.push(h("li", {},
      h("button", { class: "chat request", "data-request": String(r.id), "data-name": nameOf(r), onclick: () => showRequest(r) },
        h("span", { class: "avatar", "aria-hidden": "true" }, initials(nameOf(r))),
        h("span", { class: "chat-main" },
          h("span", { class: "chat-top" }, h("span", { class: "chat-name", dir: "auto" }, nameOf(r))),
          h("span", { class: "chat-bottom" },
            h("span", { class: "chat-last", dir: "auto" }, last ? last.body : count(0)),
            h("span", { class: "badge", "aria-label": count(r.messages.length) }, String(r.messages.length)))))));
  }
  return out;
}

function showRequest(r) {
  const act = async (path, done) => {
    try {
      const out = await S.api.call("POST", "/api/v1/requests/" + path, { request: String(r.id) });
      dlg.close();
      toast(done(out));
    } catch (e) {
      toast(errText(e));
    }
    refreshRequests();
  };
  const msgs = r.messages.length
    ? h("ul", { class: "request-msgs", id: "request-msgs" }, r.messages.map((m) =>
      h("li", { class: "msg in" }, h("div", { class: "body", dir: "auto" }, m.body), h("time", {}, fmt.time(new Date(m.sentAt))))))
    : h("p", {}, t("requestNoMessages"));
  const dlg = openDialog(t("requestFrom", { name: nameOf(r) }),
    h("p", {}, t("requestExplain")),
    h("dl", { class: "request-card" },
      h("dt", {}, t("requestAccount")), h("dd", { class: "mono" }, r.accountId),
      h("dt", {}, t("requestSafety")), h("dd", { class: "mono" }, r.safetyNumber)),
    msgs,
    h("div", { class: "row end" },
      h("button", { id: "request-decline", onclick: () => act("decline", () => t("requestDeclined")) }, t("requestDecline")),
      h("button", { id: "request-accept", class: "primary", onclick: () => act("accept", (c) => t("requestAccepted", { name: c.name })) }, t("requestAccept"))));
}
