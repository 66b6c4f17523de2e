"""Who answers the visitor: a rule-based FAQ, or any OpenAI-compatible chat model.

Settings (environment, read per request through ``sdk.plugin_settings``):

===========================================  ==============================================
``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_BASE_URL``  e.g. ``https://api.openai.com/v1``; when set,
                                                 the model answers (the FAQ stays the fallback)
``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_API_KEY``   sent as ``Authorization: Bearer ...``
``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_MODEL``     default ``gpt-4o-mini``
``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENAI_TIMEOUT``   seconds, default ``20``
``PLUGDOCK_PLUGIN_AI_CHATBOT_SUPPORT_EMAIL``    shown in FAQ answers
``PLUGDOCK_PLUGIN_AI_CHATBOT_OPENING_HOURS``    shown in FAQ answers
===========================================  ==============================================
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from plugdock import sdk

PLUGIN_ID = "ai_chatbot"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 20.0
DEFAULT_SUPPORT_EMAIL = "support@example.com"
DEFAULT_OPENING_HOURS = "Monday to Friday, 9:00 to 17:00 (UTC)"
MAX_REPLY_LENGTH = 4000
HISTORY_SENT_TO_MODEL = 20

log = sdk.get_logger(PLUGIN_ID)

History = Sequence[tuple[str, str]]
"""Earlier messages, oldest first, as ``(sender, content)`` with sender ``guest`` or ``bot``."""


class Responder(Protocol):
    def reply(self, history: list[tuple[str, str]], message: str) -> str:
        """The bot's answer to ``message``, given the conversation so far."""
        ...


def greeting(guest_name: str) -> str:
    """The first bot message of every session."""
    return (
        f"Hi {guest_name}! I'm the virtual assistant. Ask me about pricing, refunds or "
        "opening hours, or ask for a human agent at any time."
    )


@dataclass(frozen=True)
class FaqRule:
    topic: str
    pattern: re.Pattern[str]
    answer: str


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


class FaqResponder:
    """Keyword rules, first match wins; the same question always gets the same answer.

    >>> FaqResponder().topic("How much does the Pro plan cost?")
    'pricing'
    """

    def __init__(
        self,
        *,
        support_email: str = DEFAULT_SUPPORT_EMAIL,
        opening_hours: str = DEFAULT_OPENING_HOURS,
    ) -> None:
        # Order matters: a specific request ("hi, I want a refund") beats small talk.
        self.rules = [
            FaqRule(
                "human",
                _words(
                    r"human",
                    r"agent",
                    r"real person",
                    r"(?:a|some|the) person",
                    r"operator",
                    r"representative",
                    r"talk to (?:someone|somebody|support)",
                    r"speak (?:to|with) (?:someone|somebody|support)",
                    r"contact",
                ),
                "I've flagged this conversation for our support team: a person will read it and "
                "reply to the email address you gave us, usually within one business day. "
                f"You can also write to {support_email}.",
            ),
            FaqRule(
                "refund",
                _words(
                    r"refunds?",
                    r"refunded",
                    r"money back",
                    r"chargebacks?",
                    r"cancel(?:l?ed|l?ing|lation)?",
                ),
                "Refunds: every paid plan can be refunded in full within 30 days of the payment. "
                "Cancel from Billing > Subscription, or tell me here and a person will process "
                "it; the money is back on your card within 5 to 10 business days.",
            ),
            FaqRule(
                "pricing",
                _words(
                    r"prices?",
                    r"pricing",
                    r"costs?",
                    r"how much",
                    r"plans?",
                    r"subscriptions?",
                    r"fees?",
                    r"expensive",
                    r"cheap(?:er|est)?",
                ),
                "Pricing: the Starter plan is free, Pro is $29 per month and Business is $99 per "
                "month, billed monthly or yearly (two months free). Every plan has a 14-day "
                "free trial and you can change plans at any time.",
            ),
            FaqRule(
                "hours",
                _words(
                    r"opening hours",
                    r"business hours",
                    r"office hours",
                    r"hours",
                    r"are you open",
                    r"when (?:are|is) (?:you|support|the office) open",
                    r"open (?:today|now|tomorrow|on)",
                    r"weekends?",
                    r"holidays?",
                ),
                f"Our support team is available {opening_hours}. I'm here around the clock, "
                "and messages left outside those hours are answered the next business day.",
            ),
            FaqRule(
                "thanks",
                _words(r"thanks", r"thank you", r"thx", r"ty", r"cheers", r"much appreciated"),
                "You're welcome! Is there anything else I can help you with?",
            ),
            FaqRule(
                "greeting",
                re.compile(
                    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening))"
                    r"\b",
                    re.IGNORECASE,
                ),
                "Hello! How can I help you today? I can answer questions about pricing, refunds "
                "and opening hours, or pass you to a person.",
            ),
        ]
        self.fallback = (
            "I'm not sure I understood that. I can help with pricing, refunds and opening "
            "hours, or pass you to a person: just ask for a human agent."
        )
        self.escalation = (
            "Sorry, I still can't answer that myself. A person from our support team will read "
            f"this conversation and reply by email; you can also write to {support_email}."
        )

    def match(self, message: str) -> FaqRule | None:
        """The first rule matching ``message``, if any."""
        return next((rule for rule in self.rules if rule.pattern.search(message)), None)

    def topic(self, message: str) -> str:
        """The name of the first rule matching ``message``, or ``fallback``."""
        rule = self.match(message)
        return rule.topic if rule else "fallback"

    def reply(self, history: list[tuple[str, str]], message: str) -> str:
        rule = self.match(message)
        if rule is not None:
            return rule.answer
        # A second miss in a row: stop repeating the menu, promise a person instead.
        last_bot = next((text for sender, text in reversed(history) if sender == "bot"), None)
        if last_bot in (self.fallback, self.escalation):
            return self.escalation
        return self.fallback


SYSTEM_PROMPT = (
    "You are the friendly customer-support assistant on a company's website. Answer briefly "
    "and politely, in the language of the visitor. If you do not know an answer, say that a "
    "person from the support team will reply by email; never invent prices or policies."
)


class OpenAICompatibleResponder:
    """Asks an OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint.

    Works with OpenAI, Azure-style proxies, vLLM, Ollama, LM Studio, llama.cpp server...
    Any failure (network, timeout, HTTP error, unexpected JSON) is logged and answered by
    ``fallback`` instead, so a visitor always gets a reply.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout: float = DEFAULT_TIMEOUT,
        fallback: Responder | None = None,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.fallback: Responder = fallback or FaqResponder()
        self.system_prompt = system_prompt

    def reply(self, history: list[tuple[str, str]], message: str) -> str:
        try:
            return self._complete(history, message)
        except (httpx.HTTPError, ValueError, LookupError, TypeError) as exc:
            log.warning(
                "chat model at %s failed (%s: %s); answering from the FAQ instead",
                self.url,
                type(exc).__name__,
                exc,
            )
            return self.fallback.reply(history, message)

    def _complete(self, history: History, message: str) -> str:
        messages = [{"role": "system", "content": self.system_prompt}]
        for sender, content in history[-HISTORY_SENT_TO_MODEL:]:
            messages.append(
                {"role": "user" if sender == "guest" else "assistant", "content": content}
            )
        messages.append({"role": "user", "content": message})
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(
            self.url,
            json={"model": self.model, "messages": messages},
            headers=headers,
            timeout=self.timeout,
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the model returned no text")
        return content.strip()[:MAX_REPLY_LENGTH]


def make_responder(settings: Mapping[str, str] | None = None) -> Responder:
    """The responder the settings ask for (see the module docstring); the FAQ by default."""
    if settings is None:
        settings = sdk.plugin_settings(PLUGIN_ID)
    faq = FaqResponder(
        support_email=settings.get("support_email") or DEFAULT_SUPPORT_EMAIL,
        opening_hours=settings.get("opening_hours") or DEFAULT_OPENING_HOURS,
    )
    base_url = (settings.get("openai_base_url") or "").strip()
    if not base_url:
        return faq
    if not base_url.startswith(("http://", "https://")):
        log.warning("openai_base_url %r is not an http(s) URL; using the FAQ", base_url)
        return faq
    raw_timeout = settings.get("openai_timeout") or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 600:
        log.warning(
            "openai_timeout %r is not a number of seconds; using %s", raw_timeout, DEFAULT_TIMEOUT
        )
        timeout = DEFAULT_TIMEOUT
    return OpenAICompatibleResponder(
        base_url,
        api_key=settings.get("openai_api_key") or None,
        model=settings.get("openai_model") or DEFAULT_MODEL,
        timeout=timeout,
        fallback=faq,
    )
