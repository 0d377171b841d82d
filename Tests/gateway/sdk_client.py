"""Talks to `parley serve` through the official OpenAI and Anthropic Python SDKs, as a team's programs
would, and prints what it got as one JSON line: the text, the response headers Parley adds, the
usage, or the error the SDK raised. Used by Tests/ParleyEndToEndTests/GatewayTests.swift.

usage: sdk_client.py openai|anthropic stream|whole BASE_URL TOKEN MODEL PROMPT [MAX_TOKENS]
"""
import json
import sys


def headers_of(response):
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-parley")}


def run_openai(mode, base, token, model, prompt, max_tokens):
    import openai
    client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0, timeout=60)
    messages = [{"role": "user", "content": prompt}]
    if mode == "stream":
        with client.chat.completions.with_streaming_response.create(
                model=model, messages=messages, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True}) as response:
            headers = headers_of(response)
            text, usage, finish = "", None, None
            for chunk in response.parse():
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
                if chunk.usage:
                    usage = chunk.usage.model_dump()
        return {"text": text, "headers": headers, "usage": usage, "finish": finish}
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=max_tokens)
    completion = raw.parse()
    return {"text": completion.choices[0].message.content, "headers": headers_of(raw),
            "usage": completion.usage.model_dump(), "finish": completion.choices[0].finish_reason, "model": completion.model}


def run_anthropic(mode, base, token, model, prompt, max_tokens):
    import anthropic
    client = anthropic.Anthropic(base_url=base, api_key=token, max_retries=0, timeout=60)
    messages = [{"role": "user", "content": prompt}]
    if mode == "stream":
        with client.messages.stream(model=model, messages=messages, max_tokens=max_tokens) as stream:
            headers = headers_of(stream.response)
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return {"text": text, "headers": headers, "usage": final.usage.model_dump(), "finish": final.stop_reason}
    raw = client.messages.with_raw_response.create(model=model, messages=messages, max_tokens=max_tokens)
    message = raw.parse()
    return {"text": "".join(b.text for b in message.content if b.type == "text"), "headers": headers_of(raw),
            "usage": message.usage.model_dump(), "finish": message.stop_reason, "model": message.model}


def main():
    sdk, mode, base, token, model, prompt = sys.argv[1:7]
    max_tokens = int(sys.argv[7]) if len(sys.argv) > 7 else 64
    try:
        result = (run_openai if sdk == "openai" else run_anthropic)(mode, base, token, model, prompt, max_tokens)
    except Exception as error:  # the SDK's own error types are what is checked
        status = getattr(error, "status_code", None)
        print(json.dumps({"error": type(error).__name__, "status": status, "message": str(error)}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
