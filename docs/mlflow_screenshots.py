"""Screenshots of the MLflow UI as a user sees it, taken with a real headless Chromium (Playwright driving the
system's browser): the runs table and the metric charts of one experiment.

    apt-get install chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --port 5055 --workers 1 &
    /tmp/pw/bin/python docs/mlflow_screenshots.py http://127.0.0.1:5055 1 docs/

Arguments: the UI's address, the experiment id, the output folder (``mlflow_runs.png``, ``mlflow_charts.png``,
``mlflow_run.png``: the page of the experiment's oldest run, the link a training job prints when it starts).
MLflow 3.17's UI starts a fresh browser in its GenAI view whatever the experiment's kind tag says; the links below
carry ``workflowType=machine_learning``, which opens the training view (the UI remembers the choice afterwards).
"""

import sys

from playwright.sync_api import sync_playwright


def main(base: str, experiment_id: str, out: str) -> None:
    runs = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1700, "height": 1000})
        page.goto(runs)
        page.wait_for_timeout(6000)
        close = page.locator('[aria-label="Close"]')  # the assistant side panel, if the UI opens it
        if close.count():
            close.last.click(timeout=2000)
            page.wait_for_timeout(1500)
        page.screenshot(path=f"{out}/mlflow_runs.png")
        page.goto(f"{runs}&compareRunsMode=CHART")
        page.wait_for_timeout(15000)  # the charts load their metric histories one by one
        page.screenshot(path=f"{out}/mlflow_charts.png")
        first = page.locator("a[href*='/runs/']").last.get_attribute("href")  # the table lists the newest first
        link = f"{base}/{first.lstrip('/')}" if first.startswith("#") else f"{base}{first}"
        page.goto(link.split("?")[0] + "?workflowType=machine_learning")
        page.wait_for_timeout(6000)
        page.screenshot(path=f"{out}/mlflow_run.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
