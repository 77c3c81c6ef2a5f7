// The account's devices (issue 17): the list (name, last seen, this one,
// revoked), revoking one, and linking a new device from its link code:
// paste the code that `samizdat link` shows on the new device, compare the
// short code both devices show, confirm. The node runs the exchange
// (POST /api/v1/devices/link, then /confirm).
import { S, h, $, toast, errText, openDialog } from "./app.js";
import { t, lang, addStrings } from "./i18n.js";

// The banner of a device removed from its account (showRevoked).
addStrings({
  en: {
    revokedBanner: "This device was removed from your account ({time}, by {by}). Your history stays readable here, but it can no longer send.",
  },
  ru: {
    revokedBanner: "Это устройство удалено из вашего аккаунта ({time}, устройством {by}). История здесь остаётся доступной для чтения, но отправлять с него больше нельзя.",
  },
  fa: {
    revokedBanner: "این دستگاه از حساب شما حذف شد ({time}، توسط {by}). تاریخچه اینجا خواندنی می‌ماند، اما دیگر نمی‌تواند پیامی بفرستد.",
  },
});

export function devicesButton() {
  const b = h("button", { id: "devices-btn", class: "icon", "aria-label": t("devices"), title: t("devices"), onclick: showDevices });
  // A laptop and a phone, drawn inline: no font needs a glyph for it.
  const tpl = document.createElement("template");
  tpl.innerHTML = '<svg viewBox="0 0 24 24" width="1.1em" height="1.1em" fill="none" stroke="currentColor" stroke-width="1.8" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">' +
    '<rect x="2.5" y="5" width="13" height="9" rx="1"/><path d="M1 17.5h13"/><rect x="16.5" y="8" width="6" height="12" rx="1.2"/></svg>';
  b.append(tpl.content.firstChild);
  return b;
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
      h("span", { class: "muted" }, state),
      d.history ? h("span", { class: "muted history", "data-history": d.history.state }, historyText(d.history)) : null);
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

// historyText says where the chat history handed to (or received from) a
// device stands.
function historyText(hs) {
  switch (hs.state) {
    case "fetching": return t("histFetching", { done: hs.chunksDone, total: hs.chunksTotal });
    case "complete": return t("histDone", { n: hs.messages });
    case "failed": case "refused": return t("histFailed", { error: hs.error || hs.state });
    default: return t("histPending", { state: hs.state });
  }
}

export async function showDevices() {
  const ul = h("ul", { id: "device-list", class: "mutes" });
  const err = h("p", { id: "link-error", class: "error", role: "alert" });
  const step = h("div", { id: "link-step" });
  const input = h("input", { id: "link-code", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "samizdat-link:…" });
  const history = h("input", { id: "link-history", type: "checkbox", checked: true });
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
        const d = await S.api.call("POST", "/api/v1/devices/link/confirm", { id: started.id, accept, history: history.checked });
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
  h("label", { class: "radio check" }, history, t("linkHistory")),
  h("button", { id: "link-submit", type: "submit", class: "primary" }, t("linkStart")));
  openDialog(t("devices"), ul, h("h3", {}, t("linkDevice")), form, step, err);
  await paintList(ul);
}

// ---------- this device, before it has a profile: link it to an account

// linkThisButton goes on the onboarding card: the other way in, for
// someone who already has an account on another device.
export function linkThisButton(back) {
  return h("button", { id: "ob-link", type: "button", class: "secondary", onclick: () => renderLinkThis(back) }, t("linkThisDevice"));
}

function renderLinkThis(back, err) {
  const errEl = h("p", { id: "lt-error", class: "error", role: "alert" }, err || "");
  const pass = h("input", { id: "lt-pass", type: "password", autocomplete: "new-password" });
  const noPass = h("input", { id: "lt-nopass", type: "checkbox", onchange: () => { pass.disabled = noPass.checked; } });
  const noHist = h("input", { id: "lt-nohistory", type: "checkbox" });
  const out = h("div", { id: "lt-out" });
  const form = h("form", { class: "card onboarding", id: "link-this", novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    if (!noPass.checked && pass.value === "") { errEl.textContent = t("passMismatch"); return; }
    $("#lt-start").disabled = true;
    let st;
    try {
      st = await S.api.call("POST", "/api/v1/setup/link",
        { deviceName: $("#lt-name").value.trim(), passphrase: noPass.checked ? "" : pass.value, noPassphrase: noPass.checked,
          noHistory: noHist.checked });
    } catch (e) {
      $("#lt-start").disabled = false;
      errEl.textContent = errText(e);
      return;
    }
    follow(st, out, errEl, back);
  } },
  h("h1", {}, t("linkThisTitle")),
  h("p", {}, t("linkThisHelp")),
  h("label", { for: "lt-name" }, t("deviceName")),
  h("input", { id: "lt-name", maxlength: "100" }),
  h("label", { for: "lt-pass" }, t("passphrase")),
  pass,
  h("label", { class: "radio check" }, noPass, t("noPass")),
  h("label", { class: "radio check" }, noHist, t("ltNoHistory")),
  h("div", { class: "row" },
    h("button", { id: "lt-start", type: "submit", class: "primary" }, t("showLinkCode")),
    h("button", { type: "button", onclick: () => back() }, t("linkCancel"))),
  out, errEl);
  $("#root").replaceChildren(form);
  $("#lt-name").focus();
}

// follow shows the link code and its QR image, then the short code to
// compare, polling the node until linking is done (then the page starts
// over as the account) or failed.
async function follow(st, out, errEl, back) {
  let asked = false;
  for (;;) {
    if (st.state === "failed") { renderLinkThis(back, st.error || t("linkBad")); return; }
    if (st.state === "done") { location.reload(); return; }
    if (st.link && !$("#lt-link")) {
      out.replaceChildren(
        st.qr ? h("img", { id: "lt-qr", src: st.qr, alt: t("linkDevice"), width: "240", height: "240" }) : null,
        h("textarea", { id: "lt-link", readonly: true, rows: "4", dir: "ltr" }, st.link),
        h("p", { id: "lt-status" }, t("linkWaiting")));
    }
    if (st.state === "compare" && !asked) {
      asked = true;
      const answer = async (accept) => {
        try { st = await S.api.call("POST", "/api/v1/setup/link/confirm", { accept }); } catch (e) { errEl.textContent = errText(e); }
        $("#lt-status").textContent = accept ? t("linkLinking") : "";
      };
      out.append(
        h("p", {}, t("linkCompareThis")),
        h("p", { id: "lt-code", class: "sas", dir: "ltr" }, st.code),
        h("div", { class: "row" },
          h("button", { type: "button", id: "lt-yes", class: "primary", onclick: () => answer(true) }, t("linkSame")),
          h("button", { type: "button", id: "lt-no", onclick: () => answer(false) }, t("linkDiffer"))));
    }
    await new Promise((r) => setTimeout(r, 400)); // the node has no event stream before a profile exists
    try {
      st = await S.api.call("GET", "/api/v1/setup/link");
    } catch (_) {
      // Linked: the node started and serves its whole API (no setup calls).
      try { if (!(await S.api.status()).setup) { location.reload(); return; } } catch (_) { /* starting: try again */ }
    }
  }
}

// showRevoked is the banner of a device removed from its account (issue
// 17), while the node's status says so (GET /api/v1/status: revoked): its
// history stays readable, it can no longer send. null otherwise.
export function showRevoked() {
  const r = S.me && S.me.revoked;
  if (!r) return null;
  return h("p", { id: "revoked-banner", class: "revoked-banner", role: "alert" },
    t("revokedBanner", { time: when(r.at), by: r.byName || r.by.slice(-8) }));
}

// revokedEvent shows the banner when the node learns it was revoked.
export async function revokedEvent() {
  try { S.me = await S.api.status(); } catch (_) { return; }
  const el = showRevoked();
  const bar = $(".side > .bar");
  if (el && bar && !$("#revoked-banner")) bar.after(el);
}
