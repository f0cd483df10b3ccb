// The runs chosen in the table, kept across pages and reloads of this tab.

const KEY = "gitexp-selection";
const chosen = new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]"));
const listeners = new Set();

function changed() {
  sessionStorage.setItem(KEY, JSON.stringify([...chosen]));
  for (const fn of listeners) fn(chosen);
}

export const selection = {
  has: (name) => chosen.has(name),
  get size() { return chosen.size; },
  names: () => [...chosen],
  toggle(name, on) {
    if (on ?? !chosen.has(name)) chosen.add(name); else chosen.delete(name);
    changed();
  },
  set(names) {
    chosen.clear();
    names.forEach((n) => chosen.add(n));
    changed();
  },
  add(names) {
    names.forEach((n) => chosen.add(n));
    changed();
  },
  clear() {
    chosen.clear();
    changed();
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};
