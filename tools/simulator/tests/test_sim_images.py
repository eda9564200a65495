"""Image inputs in each wire format: the answer says how many images arrived; models
scripted without vision refuse them, and malformed image parts are refused."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors, types

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)


def oai_msg(*urls: str) -> list[dict]:
    parts = [{"type": "text", "text": "describe these"}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def test_sim_openai_counts_https_and_data_url_images(sim):
    msgs = oai_msg("https://example.com/a.png", f"data:image/png;base64,{PNG}")
    r = oai(sim).chat.completions.create(model="gpt-4o", messages=msgs)
    assert r.choices[0].message.content == "[gpt-4o] saw 2 images: describe these"


def test_sim_openai_refuses_images_without_vision_and_bad_urls(sim):
    sim.set_behaviour("text-only", vision=False)
    with pytest.raises(openai.BadRequestError, match="image_url is only supported"):
        oai(sim).chat.completions.create(model="text-only", messages=oai_msg("https://x/a.png"))
    with pytest.raises(openai.BadRequestError, match="Invalid image URL") as exc:
        oai(sim).chat.completions.create(model="gpt-4o", messages=oai_msg("data:text/plain;base64,aGk="))
    assert exc.value.param == "messages.[0].content.[1].image_url.url"
    assert sim.stats()["total_calls"] == 0  # refused before any scripted behaviour


def ant(sim) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)


def ant_msg(*sources: dict) -> list[dict]:
    blocks = [{"type": "image", "source": s} for s in sources]
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "what is this"}]}]


def test_sim_anthropic_counts_base64_and_url_images(sim):
    msgs = ant_msg(
        {"type": "base64", "media_type": "image/png", "data": PNG},
        {"type": "url", "url": "https://example.com/a.jpg"},
    )
    r = ant(sim).messages.create(model="claude", max_tokens=50, messages=msgs)
    assert r.content[0].text == "[claude] saw 2 images: what is this"


def test_sim_anthropic_refuses_bad_media_type_and_no_vision(sim):
    bad = ant_msg({"type": "base64", "media_type": "image/bmp", "data": PNG})
    with pytest.raises(anthropic.BadRequestError, match="media_type"):
        ant(sim).messages.create(model="claude", max_tokens=50, messages=bad)
    sim.set_behaviour("claude-text", vision=False)
    ok = ant_msg({"type": "base64", "media_type": "image/png", "data": PNG})
    with pytest.raises(anthropic.BadRequestError, match="image"):
        ant(sim).messages.create(model="claude-text", max_tokens=50, messages=ok)


def test_sim_gemini_counts_inline_and_file_data(sim):
    gem = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    try:
        import base64

        parts = [
            types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png"),
            types.Part.from_uri(file_uri="https://example.com/b.png", mime_type="image/png"),
            types.Part(text="compare them"),
        ]
        r = gem.models.generate_content(model="gemini-2.5-flash", contents=parts)
        assert r.text == "[gemini-2.5-flash] saw 2 images: compare them"
        sim.set_behaviour("gemini-text", vision=False)
        with pytest.raises(errors.ClientError) as exc:
            gem.models.generate_content(model="gemini-text", contents=parts)
        assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    finally:
        gem.close()
