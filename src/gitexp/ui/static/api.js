// Talking to `gitexp ui`: JSON endpoints, the actions (with the page's token), and the
// server-sent events that say when runs landed or a run in progress flushed metrics.

const token = document.querySelector('meta[name="gitexp-token"]')?.content || "";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status}`, response.status);
  }
  if (!response.ok) throw new ApiError(data.error || `error ${response.status}`, response.status);
  return data;
}

export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((v) => query.append(key, v));
    else if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const url = query.toString() ? `${path}?${query}` : path;
  return answer(await fetch(url, { headers: { accept: "application/json" } }));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-gitexp-token": token },
    body: JSON.stringify(body),
  }));
}

export function fileUrl(kind, name, path) {
  return `/api/${kind}?${new URLSearchParams({ name, path })}`;
}

// One EventSource for the page; listeners get {version, live}.
const listeners = new Set();
let source = null;
export let lastUpdate = null;

export function onUpdate(listener) {
  listeners.add(listener);
  if (!source) {
    source = new EventSource("/api/events");
    source.addEventListener("update", (event) => {
      lastUpdate = JSON.parse(event.data);
      for (const fn of [...listeners]) fn(lastUpdate);
    });
  }
  return () => listeners.delete(listener);
}
