// Block Kit to DOM: the blocks and elements Shepherd sends, drawn roughly as Slack draws them.
// Interactive elements call ctx.onAction(block, element, value); input blocks register a
// collector in ctx.form so the modal can gather view.state values when it is submitted.
"use strict";

(function () {
  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function textOf(obj) {
    return obj && typeof obj.text === "string" ? obj.text : "";
  }

  function renderText(obj, ctx) {
    if (!obj) return document.createDocumentFragment();
    if (obj.type === "mrkdwn") return window.Mrkdwn.render(obj.text, ctx.people);
    return window.Mrkdwn.plain(obj.text, obj.emoji);
  }

  function optionsOf(element) {
    const options = [...(element.options || [])];
    (element.option_groups || []).forEach((group) => options.push(...(group.options || [])));
    return options;
  }

  function humans(ctx) {
    return (ctx.people || []).filter((p) => !p.is_bot);
  }

  // A confirm dialog (Block Kit "confirm" object); resolves true when confirmed.
  function confirmDialog(confirm, ctx) {
    return new Promise((resolve) => {
      const backdrop = el("div", "confirm-backdrop");
      const dialog = el("div", "confirm-dialog");
      dialog.setAttribute("role", "alertdialog");
      dialog.setAttribute("aria-modal", "true");
      const titleId = nextId("confirm-title");
      const bodyId = nextId("confirm-body");
      dialog.setAttribute("aria-labelledby", titleId);
      dialog.setAttribute("aria-describedby", bodyId);
      const title = el("h2", "confirm-title");
      title.id = titleId;
      title.appendChild(renderText(confirm.title || { type: "plain_text", text: "Are you sure?" }, ctx));
      const body = el("div", "confirm-body");
      body.id = bodyId;
      body.appendChild(renderText(confirm.text || { type: "plain_text", text: "" }, ctx));
      const buttons = el("div", "confirm-buttons");
      const deny = el("button", "bk-btn", textOf(confirm.deny) || "Cancel");
      deny.type = "button";
      const ok = el("button", `bk-btn ${confirm.style === "danger" ? "danger" : "primary"}`, textOf(confirm.confirm) || "Yes");
      ok.type = "button";
      buttons.append(deny, ok);
      dialog.append(title, body, buttons);
      backdrop.appendChild(dialog);
      const previous = document.activeElement;
      const finish = (answer) => {
        backdrop.remove();
        if (previous && previous.focus) previous.focus();
        resolve(answer);
      };
      deny.addEventListener("click", () => finish(false));
      ok.addEventListener("click", () => finish(true));
      backdrop.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          finish(false);
        } else if (event.key === "Tab") {
          // Keep focus inside the dialog.
          const first = deny;
          const last = ok;
          if (event.shiftKey && document.activeElement === first) {
            event.preventDefault();
            last.focus();
          } else if (!event.shiftKey && document.activeElement === last) {
            event.preventDefault();
            first.focus();
          }
        }
      });
      document.body.appendChild(backdrop);
      ok.focus();
    });
  }

  // An interactive element outside input blocks: buttons, selects, pickers.
  function renderActionElement(block, element, ctx) {
    const type = element.type;
    const key = `${block.block_id}|${element.action_id}`;
    if (type === "button") {
      const button = el("button", `bk-btn ${element.style || ""}`.trim());
      button.type = "button";
      button.dataset.key = key;
      button.dataset.actionId = element.action_id || "";
      button.appendChild(renderText(element.text, ctx));
      if (element.accessibility_label) button.setAttribute("aria-label", element.accessibility_label);
      button.addEventListener("click", async () => {
        if (element.confirm && !(await confirmDialog(element.confirm, ctx))) return;
        if (element.url && /^https?:\/\//i.test(element.url)) window.open(element.url, "_blank", "noopener,noreferrer");
        button.disabled = true;
        try {
          await ctx.onAction(block, element, null);
        } finally {
          button.disabled = false;
        }
      });
      return button;
    }
    if (["static_select", "external_select", "users_select", "conversations_select", "channels_select", "overflow"].includes(type)) {
      const select = el("select", "bk-select");
      select.dataset.key = key;
      const label = textOf(element.placeholder) || (type === "overflow" ? "More" : "Choose");
      select.setAttribute("aria-label", label);
      select.appendChild(new Option(label, ""));
      const choices =
        type === "users_select"
          ? humans(ctx).map((p) => [p.real_name, p.id])
          : type === "conversations_select" || type === "channels_select"
            ? (ctx.channels || []).map((c) => [c.name, c.id])
            : optionsOf(element).map((o) => [textOf(o.text), o.value]);
      choices.forEach(([text, value]) => select.appendChild(new Option(text, value)));
      const initial = element.initial_option ? element.initial_option.value : element.initial_user || element.initial_conversation || element.initial_channel;
      if (initial) select.value = initial;
      select.addEventListener("change", async () => {
        if (!select.value) return;
        if (element.confirm && !(await confirmDialog(element.confirm, ctx))) return;
        await ctx.onAction(block, element, select.value);
      });
      return select;
    }
    if (type === "datepicker") {
      const input = el("input", "bk-input");
      input.type = "date";
      input.dataset.key = key;
      input.setAttribute("aria-label", textOf(element.placeholder) || "Pick a date");
      if (element.initial_date) input.value = element.initial_date;
      input.addEventListener("change", () => input.value && ctx.onAction(block, element, input.value));
      return input;
    }
    if (type === "image") {
      const span = el("span", "bk-image", `[image: ${element.alt_text || ""}]`);
      return span;
    }
    return el("span", "bk-unsupported", `[${type}]`);
  }

  // A form control inside an input block; returns [node, collect(), focusTarget].
  function renderInputElement(block, element, ctx, controlId, describedBy) {
    const type = element.type;
    const describe = (node) => {
      if (describedBy.length) node.setAttribute("aria-describedby", describedBy.join(" "));
      if (ctx.errors && ctx.errors[block.block_id]) node.setAttribute("aria-invalid", "true");
    };
    if (["plain_text_input", "number_input", "url_text_input", "email_text_input"].includes(type)) {
      const multiline = type === "plain_text_input" && element.multiline;
      const input = el(multiline ? "textarea" : "input", "bk-input");
      input.id = controlId;
      if (!multiline) {
        input.type = { number_input: "text", url_text_input: "url", email_text_input: "email" }[type] || "text";
        if (type === "number_input") input.inputMode = element.is_decimal_allowed ? "decimal" : "numeric";
      } else {
        input.rows = 4;
      }
      if (element.max_length) input.maxLength = element.max_length;
      if (element.placeholder) input.placeholder = textOf(element.placeholder);
      if (element.initial_value !== undefined && element.initial_value !== null) input.value = element.initial_value;
      if (element.focus_on_load) input.autofocus = true;
      describe(input);
      return [input, () => input.value, input];
    }
    if (type === "datepicker" || type === "timepicker") {
      const input = el("input", "bk-input");
      input.id = controlId;
      input.type = type === "datepicker" ? "date" : "time";
      const initial = element.initial_date || element.initial_time;
      if (initial) input.value = initial;
      describe(input);
      return [input, () => input.value, input];
    }
    if (["static_select", "external_select", "users_select", "conversations_select", "channels_select"].includes(type)) {
      const select = el("select", "bk-select");
      select.id = controlId;
      select.appendChild(new Option(textOf(element.placeholder) || "Choose an option", ""));
      if (type === "users_select") {
        humans(ctx).forEach((p) => select.appendChild(new Option(`${p.real_name}${p.title ? " (" + p.title + ")" : ""}`, p.id)));
      } else if (type === "conversations_select" || type === "channels_select") {
        (ctx.channels || []).forEach((c) => select.appendChild(new Option(c.name, c.id)));
      } else if (element.option_groups) {
        element.option_groups.forEach((group) => {
          const optgroup = el("optgroup");
          optgroup.label = textOf(group.label);
          (group.options || []).forEach((o) => optgroup.appendChild(new Option(textOf(o.text), o.value)));
          select.appendChild(optgroup);
        });
      } else {
        (element.options || []).forEach((o) => select.appendChild(new Option(textOf(o.text), o.value)));
      }
      const initial = element.initial_option ? element.initial_option.value : element.initial_user || element.initial_conversation || element.initial_channel;
      if (initial) select.value = initial;
      describe(select);
      return [select, () => select.value, select];
    }
    if (["radio_buttons", "checkboxes", "multi_static_select", "multi_users_select", "multi_external_select"].includes(type)) {
      const single = type === "radio_buttons";
      const group = el("div", `bk-choices ${single ? "radio" : "check"}`);
      group.id = controlId;
      group.setAttribute("role", single ? "radiogroup" : "group");
      describe(group);
      const choices =
        type === "multi_users_select"
          ? humans(ctx).map((p) => ({ text: { type: "plain_text", text: p.real_name }, value: p.id }))
          : optionsOf(element);
      const initial = new Set(
        single
          ? element.initial_option ? [element.initial_option.value] : []
          : type === "multi_users_select"
            ? element.initial_users || []
            : (element.initial_options || []).map((o) => o.value)
      );
      const inputs = [];
      choices.forEach((option, index) => {
        const row = el("label", "bk-choice");
        const input = el("input");
        input.type = single ? "radio" : "checkbox";
        input.name = controlId;
        input.value = option.value;
        input.id = `${controlId}-${index}`;
        input.checked = initial.has(option.value);
        const text = el("span");
        text.appendChild(renderText(option.text, ctx));
        row.append(input, text);
        if (option.description) {
          const description = el("span", "bk-choice-description");
          description.appendChild(renderText(option.description, ctx));
          row.appendChild(description);
        }
        group.appendChild(row);
        inputs.push(input);
      });
      const collect = () => {
        const chosen = inputs.filter((i) => i.checked).map((i) => i.value);
        return single ? chosen[0] || "" : chosen;
      };
      return [group, collect, inputs[0] || group];
    }
    return [el("span", "bk-unsupported", `[${type}]`), () => "", null];
  }

  function renderInputBlock(block, ctx) {
    const wrapper = el("div", "bk-input-block");
    wrapper.dataset.blockId = block.block_id || "";
    const element = block.element || {};
    const controlId = nextId("field");
    const grouped = ["radio_buttons", "checkboxes", "multi_static_select", "multi_users_select", "multi_external_select"].includes(element.type);
    const label = el(grouped ? "div" : "label", "bk-label");
    label.id = `${controlId}-label`;
    if (!grouped) label.htmlFor = controlId;
    label.appendChild(renderText(block.label, ctx));
    if (block.optional) label.appendChild(el("span", "bk-optional", " (optional)"));
    wrapper.appendChild(label);
    const describedBy = [];
    let hint = null;
    if (block.hint) {
      hint = el("div", "bk-hint");
      hint.id = `${controlId}-hint`;
      hint.appendChild(renderText(block.hint, ctx));
      describedBy.push(hint.id);
    }
    let error = null;
    const message = ctx.errors && ctx.errors[block.block_id];
    if (message) {
      error = el("div", "bk-error", message);
      error.id = `${controlId}-error`;
      error.setAttribute("role", "alert");
      describedBy.unshift(error.id);
      wrapper.classList.add("has-error");
    }
    const [control, collect, focusTarget] = renderInputElement(block, element, ctx, controlId, describedBy);
    if (grouped) control.setAttribute("aria-labelledby", label.id);
    wrapper.appendChild(control);
    if (error) wrapper.appendChild(error);
    if (hint) wrapper.appendChild(hint);
    if (ctx.form) ctx.form.push({ blockId: block.block_id, collect, focusTarget, hasError: !!message });
    if (block.dispatch_action && ctx.onAction && focusTarget) {
      focusTarget.addEventListener("change", () => ctx.onAction(block, element, collect()));
    }
    return wrapper;
  }

  function renderBlock(block, ctx) {
    const type = block.type;
    if (type === "header") {
      const node = el("div", "bk-header");
      node.setAttribute("role", "heading");
      node.setAttribute("aria-level", "3");
      node.appendChild(renderText(block.text, ctx));
      return node;
    }
    if (type === "divider") {
      return el("hr", "bk-divider");
    }
    if (type === "section") {
      const node = el("div", "bk-section");
      const body = el("div", "bk-section-body");
      if (block.text) {
        const text = el("div", "bk-text");
        text.appendChild(renderText(block.text, ctx));
        body.appendChild(text);
      }
      if (block.fields && block.fields.length) {
        const fields = el("div", "bk-fields");
        block.fields.forEach((field) => {
          const cell = el("div", "bk-field");
          cell.appendChild(renderText(field, ctx));
          fields.appendChild(cell);
        });
        body.appendChild(fields);
      }
      node.appendChild(body);
      if (block.accessory) {
        const accessory = el("div", "bk-accessory");
        accessory.appendChild(renderActionElement(block, block.accessory, ctx));
        node.appendChild(accessory);
      }
      return node;
    }
    if (type === "context") {
      const node = el("div", "bk-context");
      (block.elements || []).forEach((element) => {
        const part = el("span", "bk-context-item");
        if (element.type === "image") part.textContent = `[${element.alt_text || "image"}]`;
        else part.appendChild(renderText(element, ctx));
        node.appendChild(part);
      });
      return node;
    }
    if (type === "actions") {
      const node = el("div", "bk-actions");
      node.setAttribute("role", "group");
      (block.elements || []).forEach((element) => node.appendChild(renderActionElement(block, element, ctx)));
      return node;
    }
    if (type === "input") {
      return renderInputBlock(block, ctx);
    }
    if (type === "rich_text") {
      // What people type arrives with a rich_text block; the message text carries the same words.
      return null;
    }
    if (type === "markdown") {
      const node = el("div", "bk-text");
      node.appendChild(window.Mrkdwn.render(block.text, ctx.people));
      return node;
    }
    if (type === "image") {
      return el("div", "bk-image", `[image: ${block.alt_text || ""}]`);
    }
    return el("div", "bk-unsupported", `[unsupported block: ${type}]`);
  }

  function renderBlocks(blocks, ctx) {
    const fragment = document.createDocumentFragment();
    (blocks || []).forEach((block) => {
      const node = renderBlock(block, ctx);
      if (node) {
        if (block.block_id) node.dataset.blockId = block.block_id;
        fragment.appendChild(node);
      }
    });
    return fragment;
  }

  window.BlockKit = { renderBlocks, renderText, confirmDialog, hasVisibleBlocks: (blocks) => (blocks || []).some((b) => b.type !== "rich_text") };
})();
