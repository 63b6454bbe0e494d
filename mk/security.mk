# Static security scan (included by the main Makefile; part of `make test`).
#   make security   bandit over libs and services, configured in pyproject.toml [tool.bandit];
#                   every remaining finding is fixed or justified in place with `# nosec BXXX - why`.

.PHONY: security

security:  ## static security scan (bandit) over libs and services
	$(RUN) bandit -c pyproject.toml -r libs services -q
