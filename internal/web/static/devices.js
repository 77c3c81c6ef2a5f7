// The account's devices (issue 17): the list (name, last seen, this one,
// revoked), revoking one, and linking a new device from its link code:
// paste the code that `samizdat link` shows on the new device, compare the
// short code both devices show, confirm. The node runs the exchange
// (POST /api/v1/devices/link, then /confirm).
import { S, h, $, toast, errText, openDialog } from "./app.js";
import { t, lang } from "./i18n.js";

export function devicesButton() {
  return h("button", { id: "devices-btn", class: "icon", "aria-label": t("devices"), title: t("devices"), onclick: showDevices }, "⧉");
}

const when = (s) => new Date(s).toLocaleString(lang());

async function paintList(ul) {
  let list;
  try {
    list = await S.api.call("GET", "/api/v1/devices");
  } catch (e) {
    ul.replaceChildren(h("li", { class: "error" }, errText(e)));
    return;
  }
  ul.dataset.version = String(list.version);
  ul.replaceChildren(...list.devices.map((d) => {
    const state = d.this ? t("thisDevice") : d.revoked ? t("deviceRevoked") : d.lastSeen ? t("lastSeen", { time: when(d.lastSeen) }) : "";
    const li = h("li", { class: "row", "data-device": d.id, "data-revoked": d.revoked ? "1" : "0" },
      h("span", { dir: "auto" }, d.name || d.id.slice(-8)),
      h("span", { class: "muted" }, state));
    if (!d.this && !d.revoked) {
      let armed = false;
      const btn = h("button", { type: "button", class: "revoke", onclick: async () => {
        if (!armed) { armed = true; btn.textContent = t("revokeSure"); return; }
        try {
          await S.api.call("POST", "/api/v1/devices/revoke", { id: d.id });
          toast(t("deviceRevokedToast", { name: d.name }));
        } catch (e) { toast(errText(e)); }
        paintList(ul);
      } }, t("revoke"));
      li.append(btn);
    }
    return li;
  }));
}

export async function showDevices() {
  const ul = h("ul", { id: "device-list", class: "mutes" });
  const err = h("p", { id: "link-error", class: "error", role: "alert" });
  const step = h("div", { id: "link-step" });
  const input = h("input", { id: "link-code", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "samizdat-link:…" });
  const form = h("form", { id: "link-form", onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const link = input.value.trim();
    if (!link) return;
    const go = $("#link-submit");
    go.disabled = true;
    let started;
    try {
      started = await S.api.call("POST", "/api/v1/devices/link", { link });
    } catch (e) {
      err.textContent = e.status === 400 ? t("linkBad") + " (" + e.message + ")" : errText(e);
      go.disabled = false;
      return;
    }
    const answer = async (accept) => {
      step.replaceChildren();
      try {
        const d = await S.api.call("POST", "/api/v1/devices/link/confirm", { id: started.id, accept });
        toast(t("linkedToast", { name: d.name }));
        input.value = "";
      } catch (e) {
        if (accept) err.textContent = errText(e);
      }
      go.disabled = false;
      paintList(ul);
    };
    step.replaceChildren(
      h("p", {}, t("linkCompare")),
      h("p", { id: "link-sas", class: "sas", dir: "ltr" }, started.code),
      h("div", { class: "row" },
        h("button", { type: "button", id: "link-yes", class: "primary", onclick: () => answer(true) }, t("linkSame")),
        h("button", { type: "button", id: "link-no", onclick: () => answer(false) }, t("linkDiffer"))));
  } },
  h("label", { for: "link-code" }, t("linkHelp")),
  input,
  h("button", { id: "link-submit", type: "submit", class: "primary" }, t("linkStart")));
  openDialog(t("devices"), ul, h("h3", {}, t("linkDevice")), form, step, err);
  await paintList(ul);
}
