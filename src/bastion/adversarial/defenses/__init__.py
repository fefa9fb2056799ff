"""Defences, each paired with the attack it answers: ``adversarial_training``, ``feature_squeezing``,
``output`` (hardening), ``backdoor`` (import the submodules)."""
