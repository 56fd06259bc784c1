# JupyterLab with the lab installed: the `lab` service of docker-compose.yml
# (`docker compose --profile lab up -d`). The brokers are the compose file's RabbitMQ
# containers, given by URL in the environment, so this image needs no RabbitMQ of its own.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /lab

# The known-good versions (requirements.txt) and the package first, so that editing a notebook
# does not reinstall them. Editable: with the checkout mounted on /lab (as docker-compose.yml
# does), the container runs the code you are editing.
COPY requirements.txt pyproject.toml README.md ./
COPY mpsoa_lab/ mpsoa_lab/
RUN pip install -r requirements.txt -e .

COPY conftest.py ./
COPY notebooks/ notebooks/
COPY tests/ tests/

EXPOSE 8888
CMD ["jupyter", "lab", "--ip", "0.0.0.0", "--no-browser", "--allow-root", "notebooks/"]
