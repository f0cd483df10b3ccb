// The app's frame: the header, the routes (#/, #/compare?run=A&run=B, #/run/NAME) and the
// indicator of runs in progress.

import { get, onUpdate } from "./api.js";
import { clear, decoded, h } from "./dom.js";
import * as runs from "./runs.js";
import * as compare from "./compare.js";
import * as runPage from "./runpage.js";

const view = document.getElementById("view");
let unmount = null;
export const app = { info: null };

function parseRoute() {
  const hash = decoded(location.hash.slice(1) || "/");
  const raw = location.hash.slice(1) || "/";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/run/")) {
    return { name: "run", run: decoded(path.slice(5)), params };
  }
  if (path === "/compare") return { name: "compare", params };
  return { name: "runs", params, hash };
}

function route() {
  if (unmount) unmount();
  unmount = null;
  const current = parseRoute();
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === current.name ||
      (current.name === "run" && link.dataset.nav === "runs"));
  }
  clear(view);
  const modules = { runs, compare, run: runPage };
  unmount = modules[current.name].mount(view, current, app) || null;
  window.scrollTo(0, 0);
}

async function start() {
  try {
    app.info = await get("/api/info");
    document.getElementById("repo").textContent = app.info.repository;
    document.title = `gitexp · ${app.info.repository}`;
    if (app.info.write) {
      document.getElementById("repo").append(" ", h("span", { class: "badge write" }, "write"));
    }
  } catch (error) {
    clear(view, h("p", { class: "error" }, `gitexp ui is not answering: ${error.message}`));
    return;
  }
  const indicator = document.getElementById("live-indicator");
  onUpdate((update) => {
    const live = update.live || [];
    clear(indicator, live.length
      ? [h("span", { class: "pulse" }), `${live.length} run${live.length > 1 ? "s" : ""} in progress`]
      : []);
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
