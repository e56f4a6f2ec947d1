"""Generation with soda-jax models: SODA's prompts, a KV-cached decode loop in JAX, WAV out.

Public API (docs/inference.md):

- `soda_jax.inference.loader.load_model(path, *, parallelism=None, num_codebooks=None, prefer="checkpoint")
  -> LoadedModel`: a training output (latest committed checkpoint, else ``hf/``) or an HF Qwen3
  directory with SODA's vocabulary layout. `LoadedModel` holds ``model`` (levanter Qwen3LMHeadModel),
  ``model_config``, ``vocab`` (AudioTextVocab), ``num_codebooks`` (8 or 1), ``mesh``,
  ``compute_mapping``/``param_mapping``, ``source``, ``codec`` (the data's codec.json facts or None),
  ``context_length`` and ``mimi_codec()`` (the `MimiCodec` that made the data).
- `soda_jax.inference.prompts`: ``continuation_prompt``, ``tts_prompt``, ``voice_tts_prompt``,
  ``asr_prompt``, ``asr_nshot_prompt`` (shots: (audio_ids, transcript) pairs), ``translation_prompt``,
  ``choose_shots`` (seeded per item, or the same for all), ``TASK_DEFAULTS`` and ``stop_ids``.
- `soda_jax.inference.sampling.SamplingParams(temperature, top_p, top_k, max_new_tokens, stop_ids,
  seed, audio_constraint)`; `prompts.sampling_params(task, vocab, **overrides)` builds one from TASK_DEFAULTS.
- `soda_jax.inference.generate.generate(loaded, prompts, params) -> list[Generation]` (prompt, tokens,
  finish_reason, logprobs); `score(loaded, sequences) -> list of per-token log-probs` (full forward:
  entry j is log p(seq[j+1] | seq[:j+1])); `full_logits(loaded, tokens)`.
- `soda_jax.inference.parse`: ``generated_spans(vocab, prompt, tokens)`` -> the generated part's
  `soda_jax.data.parse.Span` list (the one parser: ``parse_document(ids, vocab, partial=, start=)``,
  ``span_codes``); ``generated_text``, ``generated_audio``, ``generated_text_spans``; ``write_wav``,
  ``codes_to_wav``.
- `soda_jax.inference.requests`: one call per task from raw inputs (text, waveforms) to files, used by
  ``soda generate``.
"""
