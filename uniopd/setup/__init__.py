"""What a run is made of, before its loop: the plan (every check that needs no weights) and the
parts loaded from it (tokenizer, student, routed teachers, verifiers, rollout engine)."""
