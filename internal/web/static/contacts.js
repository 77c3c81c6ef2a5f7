// Renaming and deleting a contact, from its details (the conversation
// header's title opens them). Both go through the local API
// (POST /api/v1/contacts/rename, /contacts/delete) and follow on the
// account's other devices; a contact deleted there closes its chat here
// too (contactGone).
import { S, h, $, toast, errText, setView, renderList, renderConvHeader, refreshChats } from "./app.js";
import { t, addStrings } from "./i18n.js";

addStrings({
  en: {
    ctRename: "Rename", ctNewName: "Name", ctRenamed: "Renamed to {name}.",
    ctNameEmpty: "Type a name.", ctNameTaken: "Another contact is already called “{name}”.",
    ctNameBad: "This name cannot be used: one line of at most 100 bytes. ({msg})",
    ctDelete: "Delete contact", ctDeleteSure: "Delete {name}?",
    ctDeleteText: "The contact and the whole chat are deleted on all your devices. To write to them again you need their invite.",
    ctDeleteYes: "Delete", ctCancel: "Cancel", ctDeleted: "Deleted {name}.", ctGone: "This contact was deleted on another of your devices.",
  },
  ru: {
    ctRename: "Переименовать", ctNewName: "Имя", ctRenamed: "Теперь это {name}.",
    ctNameEmpty: "Введите имя.", ctNameTaken: "Другой контакт уже называется «{name}».",
    ctNameBad: "Такое имя нельзя: одна строка не длиннее 100 байт. ({msg})",
    ctDelete: "Удалить контакт", ctDeleteSure: "Удалить {name}?",
    ctDeleteText: "Контакт и весь чат удаляются на всех ваших устройствах. Чтобы снова написать ему, понадобится его приглашение.",
    ctDeleteYes: "Удалить", ctCancel: "Отмена", ctDeleted: "{name} удалён.", ctGone: "Этот контакт удалён на другом вашем устройстве.",
  },
  fa: {
    ctRename: "تغییر نام", ctNewName: "نام", ctRenamed: "نام به {name} تغییر کرد.",
    ctNameEmpty: "یک نام بنویسید.", ctNameTaken: "مخاطب دیگری از قبل «{name}» نام دارد.",
    ctNameBad: "این نام پذیرفته نیست: یک خط و حداکثر ۱۰۰ بایت. ({msg})",
    ctDelete: "حذف مخاطب", ctDeleteSure: "{name} حذف شود؟",
    ctDeleteText: "مخاطب و کل گفتگو در همهٔ دستگاه‌های شما حذف می‌شود. برای نوشتن دوباره به او، به دعوت‌نامه‌اش نیاز دارید.",
    ctDeleteYes: "حذف", ctCancel: "انصراف", ctDeleted: "{name} حذف شد.", ctGone: "این مخاطب در دستگاه دیگری از شما حذف شد.",
  },
});

const bytes = (s) => new TextEncoder().encode(s).length;

// contactEdit is the part of the contact's details dialog that renames
// and deletes it.
export function contactEdit(c) {
  const err = h("p", { id: "ct-error", class: "error", role: "alert" });
  const input = h("input", { id: "ct-name", maxlength: "100", value: c.name, dir: "auto", autocomplete: "off" });
  const rename = h("form", { id: "ct-rename-form", onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const name = input.value.trim();
    if (!name) { err.textContent = t("ctNameEmpty"); input.focus(); return; }
    if (name === c.name) return;
    const btn = $("#ct-rename");
    btn.disabled = true;
    try {
      const nc = await S.api.call("POST", "/api/v1/contacts/rename", { contact: c.accountId, name });
      if (S.current && S.current.id === nc.id) S.current = nc;
      $("#dlg").close();
      toast(t("ctRenamed", { name: nc.name }));
      renderConvHeader();
      await refreshChats();
    } catch (e) {
      if (e.code === "exists") err.textContent = t("ctNameTaken", { name });
      else if (e.status === 400) err.textContent = t("ctNameBad", { msg: e.message });
      else err.textContent = errText(e);
      input.focus();
    } finally {
      btn.disabled = false;
    }
  } },
  h("label", { for: "ct-name" }, t("ctNewName")),
  h("div", { class: "row" }, input, h("button", { id: "ct-rename", type: "submit" }, t("ctRename"))));
  input.addEventListener("input", () => {
    err.textContent = bytes(input.value.trim()) > 100 ? t("ctNameBad", { msg: bytes(input.value.trim()) + " > 100" }) : "";
  });

  const confirmBox = h("div", { id: "ct-confirm", class: "confirm", role: "alertdialog", "aria-labelledby": "ct-sure", hidden: true },
    h("p", { id: "ct-sure" }, h("strong", { dir: "auto" }, t("ctDeleteSure", { name: c.name }))),
    h("p", {}, t("ctDeleteText")),
    h("div", { class: "row" },
      h("button", { id: "ct-delete-yes", type: "button", class: "danger", onclick: () => remove(c, err) }, t("ctDeleteYes")),
      h("button", { id: "ct-delete-no", type: "button", onclick: () => { confirmBox.hidden = true; del.hidden = false; del.focus(); } }, t("ctCancel"))));
  const del = h("button", { id: "ct-delete", type: "button", class: "danger", onclick: () => {
    del.hidden = true;
    confirmBox.hidden = false;
    $("#ct-delete-no").focus();
  } }, t("ctDelete"));
  return h("section", { id: "ct-edit" }, rename, err, del, confirmBox);
}

async function remove(c, err) {
  const btn = $("#ct-delete-yes");
  btn.disabled = true;
  try {
    await S.api.call("POST", "/api/v1/contacts/delete", { contact: c.accountId });
  } catch (e) {
    btn.disabled = false;
    err.textContent = errText(e);
    return;
  }
  $("#dlg").close();
  S.chats = S.chats.filter((x) => x.contact.id !== c.id);
  closeChat();
  toast(t("ctDeleted", { name: c.name }));
  await refreshChats();
  $("#chatlist button")?.focus();
}

function closeChat() {
  S.current = null;
  S.msgs = [];
  S.els = new Map();
  setView("list");
  renderList();
  renderConvHeader();
}

// contactGone closes the open chat whose contact was deleted (on another
// device of the account).
export function contactGone() {
  if ($("#dlg").open && $("#ct-edit")) $("#dlg").close();
  closeChat();
  toast(t("ctGone"));
}
