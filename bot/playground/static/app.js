// The playground page: draws the emulated workspace from /api/state (long poll) and turns what
// the visitor does into moves posted to /api/act. No framework, no build step.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    actingUser: $("acting-user"),
    channelList: $("channel-list"),
    dmList: $("dm-list"),
    openHome: $("open-home"),
    title: $("surface-title"),
    sub: $("surface-sub"),
    timeline: $("timeline"),
    homeView: $("home-view"),
    composer: $("composer"),
    composerInput: $("composer-input"),
    threadPanel: $("thread-panel"),
    threadTitle: $("thread-title"),
    threadTimeline: $("thread-timeline"),
    threadComposer: $("thread-composer"),
    threadInput: $("thread-input"),
    closeThread: $("close-thread"),
    modalRoot: $("modal-root"),
    toasts: $("toasts"),
    team: $("team-name"),
  };

  let state = null;
  let version = -1;
  let surface = { kind: "channel", id: null }; // or { kind: "home" }
  let thread = null; // { channel, ts }
  let modalKey = null; // person + id + hash + errors of the modal on screen: redraw only on change
  let modalShown = null; // { me, id, hash } of the modal on screen
  let modalForm = [];
  // What was typed in each open modal, by view id ({ me, hash, values }), put back when that view
  // is drawn again: after its errors arrive, a look as someone else, or a pushed step closing.
  const drafts = new Map();

  // -- talking to the server -------------------------------------------------------------------

  async function act(move) {
    let response;
    try {
      response = await fetch("/api/act", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(move),
      });
    } catch (error) {
      toast("The playground is not answering. Is it still running?", true);
      return { ok: false };
    }
    const body = await response.json().catch(() => ({ ok: false, error: "Unreadable answer." }));
    if (!response.ok) toast(body.error || `Error ${response.status}`, true);
    return body;
  }

  async function poll() {
    for (;;) {
      try {
        const run = state ? `&run=${encodeURIComponent(state.run)}` : "";
        const response = await fetch(`/api/state?since=${version}${run}`, { cache: "no-store" });
        if (!response.ok) throw new Error(String(response.status));
        const next = await response.json();
        if (!state || next.version !== version || next.run !== state.run) take(next);
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  async function refreshNow() {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (response.ok) take(await response.json());
  }

  function take(next) {
    if (state && next.run !== state.run) startAfresh();
    state = next;
    version = next.version;
    render();
  }

  // The playground restarted (a fresh workspace at each start): nothing on screen exists any more.
  function startAfresh() {
    surface = { kind: "channel", id: null };
    thread = null;
    drafts.clear();
    clearModal();
    toast("The playground restarted: this is a fresh workspace.");
  }

  function toast(message, isError) {
    const node = document.createElement("div");
    node.className = `toast${isError ? " error" : ""}`;
    node.textContent = message;
    if (isError) node.setAttribute("role", "alert");
    ui.toasts.appendChild(node);
    setTimeout(() => node.remove(), 6000);
  }

  // -- helpers ---------------------------------------------------------------------------------

  const person = (id) => (state.people || []).find((p) => p.id === id);
  const displayName = (id) => {
    const p = person(id);
    return p ? p.real_name || p.name : id || "someone";
  };
  const channel = (id) => state.channels.find((c) => c.id === id);
  const formatTime = (ts) => new Date(Number(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function ctxFor(extra) {
    return { people: state.people, channels: state.channels.filter((c) => c.kind === "channel"), ...extra };
  }

  // Keep keyboard focus where it was across a redraw (buttons carry a stable data-key).
  function withFocusKept(container, draw) {
    const active = document.activeElement;
    const key = active && container.contains(active) && active.dataset ? active.dataset.key : null;
    const scope = active && key ? active.closest("[data-ts]") : null;
    const ts = scope ? scope.dataset.ts : null;
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    const scroll = container.scrollTop;
    draw();
    container.scrollTop = atBottom ? container.scrollHeight : scroll;
    if (key) {
      const selector = ts ? `[data-ts="${CSS.escape(ts)}"] [data-key="${CSS.escape(key)}"]` : `[data-key="${CSS.escape(key)}"]`;
      const again = container.querySelector(selector);
      if (again) again.focus();
    }
  }

  // -- drawing ---------------------------------------------------------------------------------

  function render() {
    if (!state) return;
    ui.team.textContent = state.team;
    if (!surface.id && surface.kind === "channel") surface.id = state.registry;
    if (surface.kind === "channel" && !channel(surface.id)) surface.id = state.registry;
    if (thread && !channel(thread.channel)) thread = null;
    renderActors();
    renderNav();
    renderSurface();
    renderThread();
    renderModal();
  }

  function renderActors() {
    const select = ui.actingUser;
    if (select.options.length !== state.actors.length) {
      select.textContent = "";
      state.actors.forEach((id) => {
        const p = person(id);
        select.appendChild(new Option(`${p.real_name} · ${p.title}`, id));
      });
    }
    select.value = state.me;
  }

  function navButton(label, active, onClick, badge) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = `nav-item${active ? " active" : ""}`;
    if (active) button.setAttribute("aria-current", "page");
    button.textContent = label;
    if (badge) {
      const count = document.createElement("span");
      count.className = "badge";
      count.textContent = badge;
      count.setAttribute("aria-label", `${badge} messages`);
      button.appendChild(count);
    }
    button.addEventListener("click", onClick);
    li.appendChild(button);
    return li;
  }

  function renderNav() {
    ui.channelList.textContent = "";
    ui.dmList.textContent = "";
    state.channels.forEach((c) => {
      const active = surface.kind === "channel" && surface.id === c.id;
      const top = (state.messages[c.id] || []).filter((m) => !m.thread_ts || m.thread_ts === m.ts).length;
      const label = c.kind === "dm" ? c.name : `# ${c.name}`;
      const item = navButton(label, active, () => showChannel(c.id), c.kind === "dm" && top ? String(top) : "");
      item.firstChild.dataset.channel = c.id;
      (c.kind === "dm" ? ui.dmList : ui.channelList).appendChild(item);
    });
    ui.openHome.classList.toggle("active", surface.kind === "home");
    if (surface.kind === "home") ui.openHome.setAttribute("aria-current", "page");
    else ui.openHome.removeAttribute("aria-current");
  }

  function showChannel(id) {
    surface = { kind: "channel", id };
    if (thread && thread.channel !== id) thread = null;
    render();
    ui.composerInput.focus();
  }

  async function showHome() {
    surface = { kind: "home" };
    thread = null;
    render();
    await act({ type: "open_home" });
  }

  function renderSurface() {
    const home = surface.kind === "home";
    ui.homeView.hidden = !home;
    ui.timeline.hidden = home;
    ui.composer.hidden = home;
    if (home) {
      ui.title.textContent = "Shepherd · Home";
      ui.sub.textContent = "Your initiatives, approvals waiting for you, recent decisions.";
      ui.homeView.textContent = "";
      if (state.home) {
        const view = state.home;
        ui.homeView.appendChild(
          window.BlockKit.renderBlocks(view.blocks, ctxFor({ onAction: (block, element, value) => clickInView(view, block, element, value) }))
        );
      } else {
        ui.homeView.appendChild(Object.assign(document.createElement("p"), { className: "empty", textContent: "Opening the App Home..." }));
      }
      return;
    }
    const c = channel(surface.id);
    ui.title.textContent = c.kind === "dm" ? "Shepherd (direct message)" : `# ${c.name}`;
    ui.sub.textContent = c.id === state.registry ? "The registry: every initiative's card, and its thread as its home." : c.kind === "dm" ? "Ask Shepherd anything here; requests and outcomes arrive here too." : "";
    ui.composerInput.placeholder = c.kind === "dm" ? "Message Shepherd, or /shepherd ..." : `Message #${c.name}, @Shepherd ..., or /shepherd new`;
    withFocusKept(ui.timeline, () => {
      ui.timeline.textContent = "";
      const top = (state.messages[c.id] || []).filter((m) => !m.thread_ts || m.thread_ts === m.ts);
      const ephemerals = state.ephemerals.filter((e) => e.channel === c.id && !e.thread_ts);
      const items = [...top.map((m) => ({ m, ephemeral: false })), ...ephemerals.map((m) => ({ m, ephemeral: true }))];
      items.sort((a, b) => Number(a.m.ts) - Number(b.m.ts));
      if (!items.length) {
        const empty = document.createElement("p");
        empty.className = "empty";
        empty.textContent = c.id === state.registry ? "No initiatives yet. Type /shepherd new below to register one." : "Nothing here yet.";
        ui.timeline.appendChild(empty);
      }
      items.forEach(({ m, ephemeral }) => ui.timeline.appendChild(renderMessage(m, c.id, { ephemeral, inThread: false })));
    });
  }

  function renderMessage(message, channelId, { ephemeral, inThread }) {
    const article = document.createElement("article");
    article.className = `message${ephemeral ? " ephemeral" : ""}${message.bot_id ? " from-bot" : ""}`;
    article.dataset.ts = message.ts;
    const author = message.bot_id ? "Shepherd" : displayName(message.user);
    article.setAttribute("aria-label", `${ephemeral ? "Only visible to you: " : ""}${author} at ${formatTime(message.ts)}`);

    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = author.slice(0, 1).toUpperCase();
    article.appendChild(avatar);

    const body = document.createElement("div");
    body.className = "message-body";
    const meta = document.createElement("div");
    meta.className = "message-meta";
    const name = document.createElement("span");
    name.className = "author";
    name.textContent = author;
    meta.appendChild(name);
    if (message.bot_id) meta.appendChild(Object.assign(document.createElement("span"), { className: "app-tag", textContent: "APP" }));
    const time = document.createElement("time");
    time.textContent = formatTime(message.ts);
    meta.appendChild(time);
    if (message.edited) meta.appendChild(Object.assign(document.createElement("span"), { className: "edited", textContent: "(edited)" }));
    if (ephemeral) meta.appendChild(Object.assign(document.createElement("span"), { className: "only-you", textContent: "Only visible to you" }));
    body.appendChild(meta);

    const content = document.createElement("div");
    content.className = "message-content";
    const surfaceKind = ephemeral ? "ephemeral" : "message";
    const onAction = (block, element, value) => clickOnMessage(message, channelId, surfaceKind, block, element, value);
    if (window.BlockKit.hasVisibleBlocks(message.blocks)) {
      content.appendChild(window.BlockKit.renderBlocks(message.blocks, ctxFor({ onAction })));
    } else {
      const text = document.createElement("div");
      text.className = "bk-text";
      text.appendChild(window.Mrkdwn.render(message.text || "", state.people));
      content.appendChild(text);
    }
    body.appendChild(content);

    const footer = document.createElement("div");
    footer.className = "message-actions";
    if (!inThread && !ephemeral) {
      const replies = message.reply_count || 0;
      const open = document.createElement("button");
      open.type = "button";
      open.className = replies ? "thread-link" : "thread-link quiet";
      open.dataset.key = "open-thread";
      open.textContent = replies ? `${replies} ${replies === 1 ? "reply" : "replies"}` : "Reply in thread";
      open.setAttribute("aria-label", replies ? `Open thread, ${replies} ${replies === 1 ? "reply" : "replies"}` : "Reply in thread");
      open.addEventListener("click", () => openThread(channelId, message.ts));
      footer.appendChild(open);
    }
    if (ephemeral) {
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "thread-link quiet";
      dismiss.dataset.key = "dismiss";
      dismiss.textContent = "Dismiss";
      dismiss.addEventListener("click", () => act({ type: "dismiss", channel: channelId, ts: message.ts }));
      footer.appendChild(dismiss);
    }
    if (footer.childNodes.length) body.appendChild(footer);
    article.appendChild(body);
    return article;
  }

  function openThread(channelId, ts) {
    thread = { channel: channelId, ts };
    render();
    ui.threadInput.focus();
  }

  function renderThread() {
    if (!thread) {
      ui.threadPanel.hidden = true;
      return;
    }
    const messages = (state.messages[thread.channel] || []).filter((m) => m.ts === thread.ts || m.thread_ts === thread.ts);
    if (!messages.length) {
      thread = null;
      ui.threadPanel.hidden = true;
      return;
    }
    ui.threadPanel.hidden = false;
    const c = channel(thread.channel);
    ui.threadTitle.textContent = c.kind === "dm" ? "Thread" : `Thread in # ${c.name}`;
    withFocusKept(ui.threadTimeline, () => {
      ui.threadTimeline.textContent = "";
      const ephemerals = state.ephemerals.filter((e) => e.channel === thread.channel && e.thread_ts === thread.ts);
      const items = [...messages.map((m) => ({ m, ephemeral: false })), ...ephemerals.map((m) => ({ m, ephemeral: true }))];
      items.sort((a, b) => Number(a.m.ts) - Number(b.m.ts));
      items.forEach(({ m, ephemeral }, index) => {
        const node = renderMessage(m, thread.channel, { ephemeral, inThread: true });
        if (index === 0) node.classList.add("thread-parent");
        ui.threadTimeline.appendChild(node);
      });
    });
  }

  // -- modals ----------------------------------------------------------------------------------

  function renderModal() {
    const stack = state.modals || [];
    const top = stack[stack.length - 1];
    const errors = top ? (state.modal_errors || {})[top.id] || {} : {};
    const key = top ? `${state.me}|${top.id}|${top.hash}|${JSON.stringify(errors)}` : null;
    if (key === modalKey) return;
    keepDraft();
    forgetClosedDrafts(stack);
    modalKey = key;
    if (!top) {
      const hadModal = modalShown !== null;
      clearModal();
      if (hadModal) ui.composerInput.focus();
      return;
    }
    const draft = drafts.get(top.id);
    drawModal(top, stack.length, errors, draft && draft.hash === top.hash ? draft.values : null);
    modalShown = { me: state.me, id: top.id, hash: top.hash };
  }

  function clearModal() {
    ui.modalRoot.textContent = "";
    modalKey = null;
    modalShown = null;
    modalForm = [];
  }

  // Remember what is typed in the modal on screen before it is redrawn or taken down.
  function keepDraft() {
    if (modalShown) drafts.set(modalShown.id, { me: modalShown.me, hash: modalShown.hash, values: collectForm() });
  }

  // A view no longer in its person's stack was closed or submitted: its draft will not be needed.
  function forgetClosedDrafts(stack) {
    const open = new Set(stack.map((view) => view.id));
    drafts.forEach((draft, id) => {
      if (draft.me === state.me && !open.has(id)) drafts.delete(id);
    });
  }

  function collectForm() {
    const values = {};
    modalForm.forEach((field) => {
      if (field.blockId) values[field.blockId] = field.collect();
    });
    return values;
  }

  function drawModal(view, depth, errors, kept) {
    ui.modalRoot.textContent = "";
    const backdrop = document.createElement("div");
    backdrop.className = "modal-backdrop";
    const dialog = document.createElement("div");
    dialog.className = "modal";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", "modal-title");
    dialog.dataset.viewId = view.id;
    dialog.dataset.callbackId = view.callback_id || "";

    const header = document.createElement("div");
    header.className = "modal-header";
    const title = document.createElement("h2");
    title.id = "modal-title";
    title.appendChild(window.BlockKit.renderText(view.title, {}));
    header.appendChild(title);
    if (depth > 1) header.appendChild(Object.assign(document.createElement("span"), { className: "modal-depth", textContent: `step ${depth}` }));
    const x = document.createElement("button");
    x.type = "button";
    x.className = "icon-btn";
    x.setAttribute("aria-label", "Close");
    x.textContent = "✕";
    x.addEventListener("click", closeModal);
    header.appendChild(x);
    dialog.appendChild(header);

    const form = document.createElement("form");
    form.className = "modal-body";
    form.noValidate = true;
    modalForm = [];
    form.appendChild(
      window.BlockKit.renderBlocks(
        view.blocks,
        ctxFor({ errors, form: modalForm, onAction: (block, element, value) => clickInView(view, block, element, value, collectForm()) })
      )
    );
    if (kept) restoreForm(form, kept);
    const footer = document.createElement("div");
    footer.className = "modal-footer";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "bk-btn";
    close.textContent = view.close ? view.close.text : "Cancel";
    close.addEventListener("click", closeModal);
    footer.appendChild(close);
    if (view.submit) {
      const submit = document.createElement("button");
      submit.type = "submit";
      submit.className = "bk-btn primary";
      submit.textContent = view.submit.text;
      footer.appendChild(submit);
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!view.submit) return;
      const buttons = footer.querySelectorAll("button");
      buttons.forEach((b) => (b.disabled = true));
      const result = await act({ type: "submit_view", view_id: view.id, values: collectForm() });
      buttons.forEach((b) => (b.disabled = false));
      if (result && result.errors && Object.keys(result.errors).length) await refreshNow();
    });
    form.appendChild(footer);
    dialog.appendChild(form);
    backdrop.appendChild(dialog);
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeModal();
      } else if (event.key === "Tab") {
        trapFocus(dialog, event);
      }
    });
    ui.modalRoot.appendChild(backdrop);
    const firstError = modalForm.find((f) => f.hasError && f.focusTarget);
    const firstField = modalForm.find((f) => f.focusTarget);
    const target = (firstError || firstField || {}).focusTarget || dialog.querySelector("button");
    if (target) target.focus();
  }

  // Put back what the visitor typed when the same view is drawn again.
  function restoreForm(form, values) {
    modalForm.forEach((field) => {
      if (!(field.blockId in values) || !field.focusTarget) return;
      const value = values[field.blockId];
      const target = field.focusTarget;
      if (target.type === "radio" || target.type === "checkbox") {
        const chosen = new Set(Array.isArray(value) ? value : [value]);
        target.closest(".bk-choices").querySelectorAll("input").forEach((i) => (i.checked = chosen.has(i.value)));
      } else {
        target.value = value;
      }
    });
  }

  function trapFocus(container, event) {
    const focusable = [...container.querySelectorAll("button, input, select, textarea, a[href]")].filter((n) => !n.disabled && n.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  async function closeModal() {
    const stack = state.modals || [];
    const top = stack[stack.length - 1];
    if (top) await act({ type: "close_view", view_id: top.id });
  }

  // -- moves -----------------------------------------------------------------------------------

  function clickOnMessage(message, channelId, surfaceKind, block, element, value) {
    return act({ type: "click", surface: surfaceKind, channel: channelId, ts: message.ts, block_id: block.block_id, action_id: element.action_id, value });
  }

  function clickInView(view, block, element, value, values) {
    return act({ type: "click", surface: "view", view_id: view.id, block_id: block.block_id, action_id: element.action_id, value, values });
  }

  function wireComposer(form, input, target) {
    const send = async () => {
      const text = input.value.trim();
      if (!text) return;
      const where = target();
      input.value = "";
      const result = await act({ type: "send", text, ...where });
      if (!result.ok) input.value = text;
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
  }

  wireComposer(ui.composer, ui.composerInput, () => ({ channel: surface.id }));
  wireComposer(ui.threadComposer, ui.threadInput, () => ({ channel: thread.channel, thread_ts: thread.ts }));
  ui.closeThread.addEventListener("click", () => {
    thread = null;
    render();
    ui.composerInput.focus();
  });
  ui.threadPanel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !(state.modals || []).length) {
      thread = null;
      render();
      ui.composerInput.focus();
    }
  });
  ui.openHome.addEventListener("click", showHome);
  ui.actingUser.addEventListener("change", async () => {
    await act({ type: "switch_user", user: ui.actingUser.value });
    thread = null;
    keepDraft();
    clearModal();
    await refreshNow();
    if (surface.kind === "home") await act({ type: "open_home" });
    toast(`You are now ${displayName(ui.actingUser.value)}.`);
  });

  poll();
})();
