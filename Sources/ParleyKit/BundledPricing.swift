/// The bundled price catalog, as JSON, compiled into the binary so it cannot go missing.
/// Prices in US dollars per million tokens, as the providers' pricing pages listed them on `as_of`.
/// Prices change: override or add any model under `[models."provider:model"]` in config.toml.
/// `parley models --catalog` prints this file.
let bundledPricingJSON = #"""
{
  "as_of": "2025-10-01",
  "currency": "USD",
  "unit": "per million tokens",
  "sources": {
    "openai": "https://openai.com/api/pricing",
    "anthropic": "https://docs.anthropic.com/en/docs/about-claude/pricing (cache write = 5-minute write)",
    "groq": "https://groq.com/pricing",
    "mistral": "https://mistral.ai/pricing#api-pricing",
    "openrouter": "https://openrouter.ai/models (pass-through of the vendor's price)"
  },
  "models": {
    "openai:gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10, "context_window": 128000, "max_output": 16384},
    "openai:gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6, "context_window": 128000, "max_output": 16384},
    "openai:gpt-4.1": {"input": 2, "cached_input": 0.5, "output": 8, "context_window": 1047576, "max_output": 32768},
    "openai:gpt-4.1-mini": {"input": 0.4, "cached_input": 0.1, "output": 1.6, "context_window": 1047576, "max_output": 32768},
    "openai:gpt-4.1-nano": {"input": 0.1, "cached_input": 0.025, "output": 0.4, "context_window": 1047576, "max_output": 32768},
    "openai:o3": {"input": 2, "cached_input": 0.5, "output": 8, "context_window": 200000, "max_output": 100000},
    "openai:o4-mini": {"input": 1.1, "cached_input": 0.275, "output": 4.4, "context_window": 200000, "max_output": 100000},
    "openai:gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10, "context_window": 400000, "max_output": 128000},
    "openai:gpt-5-mini": {"input": 0.25, "cached_input": 0.025, "output": 2, "context_window": 400000, "max_output": 128000},
    "openai:gpt-5-nano": {"input": 0.05, "cached_input": 0.005, "output": 0.4, "context_window": 400000, "max_output": 128000},
    "anthropic:claude-opus-4-1": {"input": 15, "cached_input": 1.5, "cache_write": 18.75, "output": 75, "context_window": 200000, "max_output": 32000},
    "anthropic:claude-opus-4-0": {"input": 15, "cached_input": 1.5, "cache_write": 18.75, "output": 75, "context_window": 200000, "max_output": 32000},
    "anthropic:claude-sonnet-4-5": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15, "context_window": 200000, "max_output": 64000},
    "anthropic:claude-sonnet-4-0": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15, "context_window": 200000, "max_output": 64000},
    "anthropic:claude-3-7-sonnet-latest": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15, "context_window": 200000, "max_output": 64000},
    "anthropic:claude-haiku-4-5": {"input": 1, "cached_input": 0.1, "cache_write": 1.25, "output": 5, "context_window": 200000, "max_output": 64000},
    "anthropic:claude-3-5-haiku-latest": {"input": 0.8, "cached_input": 0.08, "cache_write": 1, "output": 4, "context_window": 200000, "max_output": 8192},
    "groq:llama-3.3-70b-versatile": {"input": 0.59, "output": 0.79, "context_window": 131072, "max_output": 32768},
    "groq:llama-3.1-8b-instant": {"input": 0.05, "output": 0.08, "context_window": 131072, "max_output": 131072},
    "groq:openai/gpt-oss-120b": {"input": 0.15, "output": 0.75, "context_window": 131072, "max_output": 65536},
    "groq:openai/gpt-oss-20b": {"input": 0.1, "output": 0.5, "context_window": 131072, "max_output": 65536},
    "mistral:mistral-small-latest": {"input": 0.1, "output": 0.3, "context_window": 131072},
    "mistral:mistral-medium-latest": {"input": 0.4, "output": 2, "context_window": 131072},
    "mistral:mistral-large-latest": {"input": 2, "output": 6, "context_window": 131072},
    "mistral:codestral-latest": {"input": 0.3, "output": 0.9, "context_window": 256000},
    "mistral:open-mistral-nemo": {"input": 0.15, "output": 0.15, "context_window": 131072},
    "openrouter:openai/gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6, "context_window": 128000, "max_output": 16384},
    "openrouter:openai/gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10, "context_window": 128000, "max_output": 16384},
    "openrouter:anthropic/claude-sonnet-4.5": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15, "context_window": 200000, "max_output": 64000},
    "openrouter:meta-llama/llama-3.3-70b-instruct": {"input": 0.13, "output": 0.4, "context_window": 131072},
    "openrouter:anthropic/claude-haiku-4.5": {"input": 1, "cached_input": 0.1, "cache_write": 1.25, "output": 5, "context_window": 200000, "max_output": 64000}
  }
}
"""#
