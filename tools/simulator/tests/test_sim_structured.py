"""JSON outputs in each wire format: the content is JSON valid for the requested schema."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import openai
import pydantic
from google import genai
from google.genai import types

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 18},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "address": {"$ref": "#/$defs/address"},
    },
    "required": ["name", "age", "tags", "address"],
    "additionalProperties": False,
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        }
    },
}
ASK = [{"role": "user", "content": "extract the person as json"}]


class Person(pydantic.BaseModel):
    name: str
    age: int


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)


def test_sim_openai_json_schema_strict(sim):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": PERSON}}
    r = oai(sim).chat.completions.create(model="gpt-4o", messages=ASK, response_format=fmt)
    value = json.loads(r.choices[0].message.content)
    jsonschema.validate(value, PERSON)
    assert value["age"] == 18 and len(value["tags"]) == 2


def test_sim_openai_parse_with_pydantic_model(sim):
    r = oai(sim).chat.completions.parse(model="gpt-4o", messages=ASK, response_format=Person)
    assert isinstance(r.choices[0].message.parsed, Person)


def test_sim_openai_json_object_and_scripted_valid_reply(sim):
    r = oai(sim).chat.completions.create(
        model="m", messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    sim.set_behaviour("m", reply='{"name": "Ada", "age": 36}')
    r = oai(sim).chat.completions.parse(model="m", messages=ASK, response_format=Person)
    assert r.choices[0].message.parsed == Person(name="Ada", age=36)


def test_sim_break_schema_sends_the_scripted_reply_in_every_format(sim):
    sim.set_behaviour("m", reply="not JSON at all", break_schema=True)
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    r = oai(sim).chat.completions.create(model="m", messages=ASK, response_format=fmt)
    assert r.choices[0].message.content == "not JSON at all"
    c = anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)
    r = c.messages.create(model="m", max_tokens=500, messages=ASK,
                          output_config={"format": {"type": "json_schema", "schema": PERSON}})
    assert r.content[0].text == "not JSON at all"
    gem = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    try:
        r = gem.models.generate_content(
            model="m", contents="a person please",
            config=types.GenerateContentConfig(response_mime_type="application/json",
                                               response_json_schema=PERSON))
        assert r.text == "not JSON at all"
    finally:
        gem.close()


def test_sim_anthropic_output_config_json_schema(sim):
    c = anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)
    r = c.messages.create(
        model="claude", max_tokens=500, messages=ASK,
        output_config={"format": {"type": "json_schema", "schema": PERSON}},
    )
    jsonschema.validate(json.loads(r.content[0].text), PERSON)


def test_sim_gemini_response_schema_and_json_schema(sim):
    gem = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    try:
        r = gem.models.generate_content(
            model="gemini-2.5-flash", contents="a person please",
            config=types.GenerateContentConfig(
                response_mime_type="application/json", response_schema=Person
            ),
        )
        assert isinstance(r.parsed, Person)
        r = gem.models.generate_content(
            model="gemini-2.5-flash", contents="a person please",
            config=types.GenerateContentConfig(
                response_mime_type="application/json", response_json_schema=PERSON
            ),
        )
        jsonschema.validate(json.loads(r.text), PERSON)
    finally:
        gem.close()
