"""Try Shepherd in a browser with no Slack workspace: the bot, the local Slack emulator and a
web page that draws the emulated workspace (``shepherd run`` without Slack credentials).

``runtime.Playground`` wires the emulator (:mod:`bot.emulator`) to the real Bolt app; ``web``
serves the page (``static/``) and its JSON API; ``demo`` seeds the people and channels.
"""

from bot.playground.runtime import ActError, Playground
from bot.playground.web import web_app

__all__ = ["ActError", "Playground", "web_app"]
