"""The Gradio web app: ``build_app(settings, services) -> gr.Blocks`` and the options to launch it.

Chat tab: a streaming chat (thumbs on every answer, retry, undo, new conversation, example
prompts), the recommended items as catalog cards with their own 👍/👎, and a "What I understood"
panel where unticking a constraint removes it and re-ranks. Insights tab: see ``ui_insights.py``.
Per-user data lives only in a ``gr.State`` (a ``ChatSession``); the services are shared. The
logic is in ``ui_session.ChatController``; this module only lays out components and maps
``View`` objects onto them. Gradio is imported inside functions so importing this is cheap.
"""
import html
from typing import Any, Callable, Iterator

from .errors import ConfigError
from .services import Services
from .settings import Settings
from .ui_insights import InsightsPanel
from .ui_session import BUSY_TEXT, ChatController, ChatSession, View
from .ui_view import CSS, Copy, banner_html, copy_for, header_html, safe_markdown

UNDERSTOOD_HINT = ('<div class="empty-hint">Nothing yet. As you chat I list the category, budget, must-haves, '
                   'things to avoid, and the items you liked or turned down.</div>')
CARDS_HINT = '<div class="empty-hint">Real catalog items appear here, each with the reason it was picked.</div>'


def build_app(settings: Settings, services: Services) -> Any:
    """Lay out the whole app; per-session state is created by Gradio for each visitor."""
    import gradio as gr

    controller = ChatController(services)
    panel = InsightsPanel(services)
    copy = copy_for(services.catalog)  # a shop's words, or a film finder's
    with gr.Blocks(title=f"chatrec · {copy.name}", analytics_enabled=False) as demo:
        session = gr.State(lambda: controller.new_session())  # a function: called once per visitor
        gr.HTML(header_html(len(services.catalog), services.model_name, copy))
        banner = banner_html(services.notices, services.backend is None)
        gr.HTML(banner, visible=bool(banner), elem_id="notice-banner")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = _chat_tab(gr, settings, controller, copy)
            with gr.Tab("Insights", id="insights", elem_id="insights-tab") as insights_tab:
                refresh, refresh_outputs = panel.build()
        insights_tab.select(refresh, outputs=refresh_outputs, concurrency_id="insights", concurrency_limit=2)
        _wire_chat(gr, controller, session, chat)
    demo.chatrec_controller = controller  # for tests and scripts: the handlers without a browser
    demo.chatrec_insights = panel
    return demo


def _chat_tab(gr, settings: Settings, controller: ChatController, copy: Copy) -> dict[str, Any]:
    c: dict[str, Any] = {"cols": [], "cards": [], "ups": [], "downs": []}
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=420):
            c["chatbot"] = gr.Chatbot(
                elem_id="chat", height=560, show_label=False, feedback_options=("Like", "Dislike"),
                examples=[{"text": e} for e in copy.examples], buttons=["copy"], placeholder=copy.welcome)
            with gr.Row(equal_height=True):
                c["box"] = gr.Textbox(placeholder=copy.placeholder,
                                      show_label=False, scale=8, elem_id="msg", autofocus=True, lines=1)
                c["send"] = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
            with gr.Row():
                c["retry"] = gr.Button("↻ Retry", size="sm", elem_id="retry")
                c["undo"] = gr.Button("↶ Undo", size="sm", elem_id="undo")
                c["new"] = gr.Button("+ New conversation", size="sm", elem_id="new-chat")
            c["status"] = gr.Markdown("", elem_classes="status-line", elem_id="status")
        with gr.Column(scale=5, min_width=360):
            gr.HTML('<div class="panel-title">What I understood</div><div class="panel-hint">'
                    'Untick anything I got wrong and the picks update.</div>')
            c["understood_hint"] = gr.HTML(UNDERSTOOD_HINT, elem_id="understood-hint")
            c["understood"] = gr.CheckboxGroup(choices=[], value=[], show_label=False, elem_id="understood",
                                               visible=False)
            gr.HTML('<div class="panel-title">Recommended for you</div>')
            c["cards_hint"] = gr.HTML(CARDS_HINT, elem_id="cards-hint")
            for i in range(1, controller.slots + 1):
                with gr.Column(visible=False, elem_classes="rec-slot", elem_id=f"card-{i}") as col:
                    c["cards"].append(gr.HTML(elem_id=f"item-card-{i}"))
                    with gr.Row(elem_classes="rec-actions"):
                        c["ups"].append(gr.Button("👍 More like this", size="sm", elem_id=f"item-up-{i}",
                                                  elem_classes="item-up", scale=0))
                        c["downs"].append(gr.Button("👎 Not for me", size="sm", elem_id=f"item-down-{i}",
                                                    elem_classes="item-down", scale=0))
                c["cols"].append(col)
    return c


def _wire_chat(gr, controller: ChatController, session, c: dict[str, Any]) -> None:
    events = _ChatEvents(gr, controller, c)
    outputs = [session, c["chatbot"], c["box"], c["status"], c["understood"], c["understood_hint"], c["cards_hint"],
               *c["cols"], *c["cards"]]
    events.wire_turns(session, outputs)
    events.wire_feedback(session, outputs)


class _ChatEvents:
    """Adapters from ``ChatController`` methods (sessions in, ``View`` out) to Gradio handlers."""

    def __init__(self, gr, controller: ChatController, c: dict[str, Any]):
        self.gr, self.controller, self.c = gr, controller, c

    def show(self, s: ChatSession, view: View) -> list[Any]:
        gr, c = self.gr, self.c
        _toast(gr, view)
        keep = gr.skip()
        cols = [keep] * len(c["cols"]) if view.streaming else [gr.Column(visible=bool(h)) for h in view.cards]
        cards = [keep] * len(c["cards"]) if view.streaming else list(view.cards)
        # The status line is markdown and quotes catalog titles and the user's words: escape like chat text.
        status = "✍️ Answering…" if view.streaming else safe_markdown(view.status)
        understood = gr.CheckboxGroup(choices=view.choices, value=[k for _, k in view.choices],
                                      visible=bool(view.choices))
        understood_hint = gr.HTML(visible=not view.choices)
        cards_hint = keep if view.streaming else gr.HTML(visible=not any(view.cards))
        box = keep if view.draft is None else view.draft
        return [s, view.messages, box, status, understood, understood_hint, cards_hint, *cols, *cards]

    def stream(self, views: Callable[..., Iterator[View]]):
        def handler(s: ChatSession | None, *args) -> Iterator[list[Any]]:
            s = s or self.controller.new_session()
            last = None
            for last in views(s, *args):
                yield self.show(s, last)
            if last is not None and last.toast and last.toast[0] == "error":
                raise self.gr.Error(html.escape(last.toast[1]), print_exception=False)
        return handler

    def single(self, fn: Callable[..., View]):
        """A quick action; refused with a toast while a turn of the same session is running."""
        def handler(s: ChatSession | None, *args) -> list[Any]:
            s = s or self.controller.new_session()
            return self.show(s, self.controller.exclusive(s, fn, *args))
        return handler

    def wire_turns(self, session, outputs: list[Any]) -> None:
        gr, c, controller = self.gr, self.c, self.controller
        send = self.stream(controller.send)
        for trigger in (c["box"].submit, c["send"].click):
            trigger(send, inputs=[session, c["box"]], outputs=outputs, concurrency_id="chat")

        def on_example(s: ChatSession | None, evt: gr.SelectData) -> Iterator[list[Any]]:
            value = evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value)
            yield from send(s, value)

        c["chatbot"].example_select(on_example, inputs=[session], outputs=outputs, concurrency_id="chat")
        retry, undo = self.stream(controller.retry), self.single(controller.undo)
        for trigger in (c["retry"].click, c["chatbot"].retry):
            trigger(retry, inputs=[session], outputs=outputs, concurrency_id="chat")
        for trigger in (c["undo"].click, c["chatbot"].undo):
            trigger(undo, inputs=[session], outputs=outputs)

        def new(old: ChatSession | None) -> list[Any]:
            if old is not None and controller.busy(old):  # the running turn would overwrite it
                return self.show(old, controller.view(old, toast=("info", BUSY_TEXT)))
            s = controller.new_session()
            return self.show(s, controller.view(s, status="Started a new conversation."))

        for trigger in (c["new"].click, c["chatbot"].clear):
            trigger(new, inputs=[session], outputs=outputs)

    def wire_feedback(self, session, outputs: list[Any]) -> None:
        gr, c, controller = self.gr, self.c, self.controller

        def on_like(s: ChatSession | None, evt: gr.LikeData) -> list[Any]:
            index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return self.single(controller.rate_message)(s, index, evt.liked)

        c["chatbot"].like(on_like, inputs=[session], outputs=outputs)
        c["understood"].input(self.single(controller.keep_constraints), inputs=[session, c["understood"]],
                              outputs=outputs)
        for slot, (up, down) in enumerate(zip(c["ups"], c["downs"])):
            up.click(self.single(lambda s, n=slot: controller.rate_item(s, n, 1)), inputs=[session], outputs=outputs)
            down.click(self.single(lambda s, n=slot: controller.rate_item(s, n, -1)), inputs=[session],
                       outputs=outputs)


def _toast(gr, view: View) -> None:
    if view.toast is None:
        return
    level, text = view.toast
    text = html.escape(text)  # toasts render HTML, and the text can quote catalog titles
    if level == "info":
        gr.Info(text, duration=4)
    elif level == "warning":
        gr.Warning(text, duration=8)
    # "error" is raised as gr.Error by the streaming handler after its last update


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must look like USER:PASSWORD (or set CHATREC_AUTH)")
    return user, password


def theme() -> Any:
    import gradio as gr

    # System fonts only: the default theme would fetch Google Fonts, which offline machines cannot.
    fonts = ["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", neutral_hue="slate",
                          font=fonts, font_mono=["ui-monospace", "Menlo", "monospace"])


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: server, auth, theme and CSS (Gradio 6 takes them here)."""
    return {"server_name": settings.host, "server_port": settings.port, "auth": parse_auth(settings.auth),
            "share": False, "css": CSS, "theme": theme(), "show_error": False, "footer_links": []}
