// Slack mrkdwn to DOM nodes. Text only ever reaches the page through text nodes and attributes
// set one by one, never parsed as HTML, so nothing the bot (or a visitor) writes can inject markup.
"use strict";

(function () {
  const EMOJI = {
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️",
    leftwards_arrow_with_hook: "↩️", hourglass_flowing_sand: "⏳", hourglass: "⌛",
    heavy_minus_sign: "➖", tada: "🎉", page_facing_up: "📄", mag: "🔍",
    information_source: "ℹ️", inbox_tray: "📥", construction: "🚧", clipboard: "📋",
    "+1": "👍", "-1": "👎", thumbsup: "👍", thumbsdown: "👎", eyes: "👀", bell: "🔔",
    rocket: "🚀", memo: "📝", lock: "🔒", no_entry: "⛔", red_circle: "🔴",
    large_green_circle: "🟢", large_yellow_circle: "🟡", link: "🔗", books: "📚",
    bulb: "💡", question: "❓", arrow_right: "➡️", calendar: "📅", busts_in_silhouette: "👥",
    speech_balloon: "💬", robot_face: "🤖", sparkles: "✨", stopwatch: "⏱️", scroll: "📜",
  };
  const SAFE_URL = /^(https?:\/\/|mailto:)/i;
  const INLINE = new RegExp(
    [
      "<([^<>\\n]+)>",
      "`([^`\\n]+)`",
      "(?<![\\w*])\\*(?!\\s)([^*\\n]+?)(?<!\\s)\\*(?!\\w)",
      "(?<![\\w_])_(?!\\s)([^_\\n]+?)(?<!\\s)_(?!\\w)",
      "(?<![\\w~])~(?!\\s)([^~\\n]+?)(?<!\\s)~(?!\\w)",
    ].join("|"),
    "g"
  );

  function decode(text) {
    return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function emojify(text) {
    return text.replace(/:([a-z0-9_+\-]+):/g, (whole, name) => EMOJI[name] || whole);
  }

  // Plain text with line breaks and emoji, as text nodes.
  function appendText(parent, raw, options) {
    const text = options && options.emoji === false ? decode(raw) : emojify(decode(raw));
    text.split("\n").forEach((line, index) => {
      if (index > 0) parent.appendChild(document.createElement("br"));
      if (line) parent.appendChild(document.createTextNode(line));
    });
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function formatDate(seconds, format, fallback) {
    const when = new Date(seconds * 1000);
    if (Number.isNaN(when.getTime())) return fallback;
    const tokens = {
      date_num: `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`,
      date: when.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" }),
      date_short: when.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }),
      date_long: when.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" }),
      date_pretty: when.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" }),
      date_short_pretty: when.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }),
      date_long_pretty: when.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" }),
      time: when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }),
      time_secs: when.toLocaleTimeString(),
      ago: when.toLocaleString(),
    };
    return format.replace(/\{(\w+)\}/g, (whole, name) => tokens[name] || whole);
  }

  function nameOf(people, id) {
    const person = (people || []).find((p) => p.id === id);
    return person ? person.real_name || person.name : id;
  }

  // One <...> token: a mention, a channel, a date, a special mention or a link.
  function appendAngle(parent, inner, people) {
    const bar = inner.indexOf("|");
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : "";
    if (target.startsWith("@")) {
      const span = document.createElement("span");
      span.className = "mention";
      span.textContent = "@" + (label || nameOf(people, target.slice(1)));
      parent.appendChild(span);
      return;
    }
    if (target.startsWith("#")) {
      const span = document.createElement("span");
      span.className = "mention";
      span.textContent = "#" + (label || target.slice(1));
      parent.appendChild(span);
      return;
    }
    if (target.startsWith("!date^")) {
      const parts = target.split("^");
      const span = document.createElement("time");
      const seconds = Number(parts[1]);
      span.dateTime = Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : "";
      span.title = decode(label);
      span.textContent = formatDate(seconds, parts[2] || "{date_short}", decode(label));
      parent.appendChild(span);
      return;
    }
    if (target.startsWith("!")) {
      const span = document.createElement("span");
      span.className = "mention";
      const special = target.slice(1).split("^")[0];
      span.textContent = label ? decode(label) : "@" + special;
      parent.appendChild(span);
      return;
    }
    const url = decode(target);
    if (SAFE_URL.test(url)) {
      const link = document.createElement("a");
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      appendText(link, label || target, { emoji: !!label });
      parent.appendChild(link);
    } else {
      appendText(parent, label || target);
    }
  }

  function appendInline(parent, text, people) {
    let position = 0;
    INLINE.lastIndex = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > position) appendText(parent, text.slice(position, match.index));
      if (match[1] !== undefined) {
        appendAngle(parent, match[1], people);
      } else if (match[2] !== undefined) {
        const code = document.createElement("code");
        code.textContent = decode(match[2]);
        parent.appendChild(code);
      } else {
        const tag = match[3] !== undefined ? "strong" : match[4] !== undefined ? "em" : "s";
        const node = document.createElement(tag);
        appendInline(node, match[3] ?? match[4] ?? match[5], people);
        parent.appendChild(node);
      }
      position = match.index + match[0].length;
    }
    if (position < text.length) appendText(parent, text.slice(position));
  }

  // Render mrkdwn ``text`` into a fragment: code blocks, quotes, then inline formatting.
  function render(text, people) {
    const fragment = document.createDocumentFragment();
    const pieces = String(text || "").split("```");
    pieces.forEach((piece, index) => {
      if (index % 2 === 1) {
        const pre = document.createElement("pre");
        pre.textContent = decode(piece.replace(/^\n/, ""));
        fragment.appendChild(pre);
        return;
      }
      const lines = piece.split("\n");
      let buffer = [];
      const flush = () => {
        if (!buffer.length) return;
        const span = document.createElement("span");
        appendInline(span, buffer.join("\n"), people);
        fragment.appendChild(span);
        buffer = [];
      };
      lines.forEach((line, lineIndex) => {
        const quote = line.match(/^(&gt;|>)\s?(.*)$/);
        if (quote) {
          flush();
          const block = document.createElement("blockquote");
          appendInline(block, quote[2], people);
          fragment.appendChild(block);
        } else {
          buffer.push(line);
          if (lineIndex === lines.length - 1) flush();
        }
      });
      flush();
    });
    return fragment;
  }

  // Plain text (plain_text objects), emoji shortcodes honoured.
  function plain(text, emoji) {
    const fragment = document.createDocumentFragment();
    const value = String(text || "");
    const shown = emoji === false ? value : emojify(value);
    shown.split("\n").forEach((line, index) => {
      if (index > 0) fragment.appendChild(document.createElement("br"));
      if (line) fragment.appendChild(document.createTextNode(line));
    });
    return fragment;
  }

  window.Mrkdwn = { render, plain, nameOf };
})();
