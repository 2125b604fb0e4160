// Floe's console: a page of plain ES modules over the management and catalog APIs (no build
// step; the binary serves these files as they are). Every view is a function of the URL's hash,
// so a view can be linked and reloaded. The DOM is built with `h()` (text is never parsed as
// HTML). Lists page through the APIs and never load a warehouse whole.

const NS_SEP = "\u001f";
const PAGE = 100;

// ---------------------------------------------------------------------------------------------
// API

const session = {
  token: sessionStorage.getItem("floe.token") || null,
};

class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, data, message);
  }
  return data;
}

const mgmt = (path) => `/management/v1${path}`;
const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};

// The catalog prefix of a warehouse at a ref (`main` when none), from `/v1/config`.
const prefixes = new Map();
async function catalogPrefix(warehouseId, ref) {
  const key = ref && ref !== "main" ? `${warehouseId}@${ref}` : warehouseId;
  if (!prefixes.has(key)) {
    const config = await api("GET", `/catalog/v1/config${q({ warehouse: key })}`);
    prefixes.set(key, config.overrides.prefix);
  }
  return `/catalog/v1/${encodeURIComponent(prefixes.get(key))}`;
}
const nsPath = (levels) => encodeURIComponent(levels.join(NS_SEP));

// What the caller may do on an object (its `can_*` relations); nothing when it cannot be told.
// Actions the caller may not take are disabled in the page, not only refused by the server.
async function may(objectType, objectId) {
  try {
    const answer = await api("GET", mgmt(`/permissions/${objectType}/${encodeURIComponent(objectId)}`));
    return new Set(answer.relations);
  } catch {
    return new Set();
  }
}

// Disables a form's controls, saying why, unless `allowed`.
function gate(form, allowed, why) {
  if (allowed) return form;
  for (const el of form.querySelectorAll("input, select, textarea, button")) el.disabled = true;
  form.classList.add("denied");
  form.append(h("span", { class: "muted" }, why));
  return form;
}

// ---------------------------------------------------------------------------------------------
// DOM

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function table(headers, rows, attrs) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "None"))),
  );
}

function errorBox(e) {
  return h("div", { class: "error", role: "alert" }, e instanceof ApiError ? `${e.message} (${e.status})` : String(e));
}

const main = () => document.getElementById("main");
function render(...children) {
  main().replaceChildren(...children);
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  parts.forEach(([label, href], i) => {
    if (i) nav.append(h("span", { class: "sep" }, "/"));
    nav.append(href ? h("a", { href }, label) : h("span", {}, label));
  });
}

const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
// A time the APIs give as unix milliseconds or as text.
const fmtWhen = (v) => (typeof v === "number" ? fmtTime(v) : v || "");
const fmtBytes = (n) => {
  if (n === undefined || n === null || n === "") return "";
  let v = Number(n);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (v < 1024 || unit === "TiB") return `${unit === "B" ? v : v.toFixed(1)} ${unit}`;
    v /= 1024;
  }
  return String(n);
};

function typeName(type) {
  if (typeof type === "string") return type;
  if (type.type === "list") return `list<${typeName(type.element)}>`;
  if (type.type === "map") return `map<${typeName(type.key)}, ${typeName(type.value)}>`;
  if (type.type === "struct") return "struct";
  return JSON.stringify(type);
}

// Set through the CSSOM: the page's policy refuses inline style attributes.
function indent(el, depth) {
  el.style.paddingLeft = `${depth * 1.2}rem`;
  return el;
}

// Schema fields, nested ones indented under their parents.
function fieldRows(fields, depth = 0, rows = []) {
  for (const f of fields) {
    rows.push(
      h(
        "tr",
        {},
        h("td", { class: "num" }, f.id),
        h("td", {}, indent(h("span", {}, f.name), depth)),
        h("td", {}, h("code", {}, typeName(f.type))),
        h("td", {}, f.required ? "required" : "optional"),
        h("td", {}, f.doc || ""),
      ),
    );
    const t = f.type;
    if (t && typeof t === "object") {
      if (t.type === "struct") fieldRows(t.fields, depth + 1, rows);
      if (t.type === "list" && typeof t.element === "object" && t.element.type === "struct")
        fieldRows(t.element.fields, depth + 1, rows);
      if (t.type === "map" && typeof t.value === "object" && t.value.type === "struct")
        fieldRows(t.value.fields, depth + 1, rows);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Views

async function home() {
  crumbs(["Warehouses", "#/"]);
  const [projects, warehouses, info] = await Promise.all([
    api("GET", mgmt("/projects")),
    api("GET", mgmt("/warehouses")),
    api("GET", mgmt("/info")).catch(() => ({})),
  ]);
  const projectName = new Map(projects.projects.map((p) => [p.id, p.name]));
  const rows = warehouses.warehouses.map((w) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/wh/${w.id}` }, w.name)),
      h("td", {}, projectName.get(w["project-id"]) || w["project-id"]),
      h("td", {}, storageSummary(w["storage-profile"])),
      h("td", {}, w["storage-profile"]["s3-gateway"] || w["storage-profile"].type === "local" ? gatewayOf(w, info) : ""),
    ),
  );
  const creatable = [];
  for (const p of projects.projects) if ((await may("project", p.id)).has("can_create")) creatable.push(p);
  const counts = new Map();
  for (const w of warehouses.warehouses) counts.set(w["project-id"], (counts.get(w["project-id"]) || 0) + 1);
  render(
    h("h1", {}, "Warehouses"),
    table(["Name", "Project", "Storage", "S3 gateway"], rows, { id: "warehouses" }),
    h("h2", {}, "Projects"),
    table(
      ["Name", "Id", "Warehouses"],
      projects.projects.map((p) => h("tr", {}, h("td", {}, h("a", { href: `#/project/${p.id}` }, p.name)), h("td", {}, h("code", {}, p.id)), h("td", { class: "num" }, counts.get(p.id) || 0))),
      { id: "projects" },
    ),
    h("h2", {}, "Create a warehouse"),
    gate(createWarehouseForm(creatable.length ? creatable : projects.projects), creatable.length > 0, "You may not create warehouses."),
  );
}

// A project: its warehouses and its grants.
async function projectView(id) {
  const [project, warehouses] = await Promise.all([api("GET", mgmt(`/projects/${id}`)), api("GET", mgmt(`/warehouses${q({ "project-id": id })}`))]);
  crumbs(["Warehouses", "#/"], [`Project ${project.name}`]);
  const mine = warehouses.warehouses.filter((w) => w["project-id"] === id);
  render(
    h("h1", {}, `Project ${project.name}`),
    h("p", { class: "muted" }, `Id ${project.id}`),
    h("h2", {}, "Warehouses"),
    table(["Name", "Storage"], mine.map((w) => h("tr", {}, h("td", {}, h("a", { href: `#/wh/${w.id}` }, w.name)), h("td", {}, storageSummary(w["storage-profile"])))), { id: "project-warehouses" }),
    h("h2", {}, "Grants"),
    await grantsPanel("project", id),
  );
}

function storageSummary(profile) {
  if (profile.type === "local") return `local: ${profile.root}${profile["s3-gateway"] ? " (gateway)" : ""}`;
  if (profile.type === "s3") return `s3://${profile.bucket}${profile["key-prefix"] ? "/" + profile["key-prefix"] : ""} (${profile.region})`;
  return JSON.stringify(profile);
}

function gatewayOf(w, info) {
  if (!w["storage-profile"]["s3-gateway"]) return "";
  return info["s3-endpoint"] ? `${info["s3-endpoint"]} (bucket of ${w.name})` : "served";
}

function createWarehouseForm(projects) {
  const out = h("div");
  const form = h(
    "form",
    { class: "stack", id: "create-warehouse" },
    h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "sales" })),
    h(
      "label",
      {},
      "Project",
      h("select", { name: "project" }, projects.map((p) => h("option", { value: p.id }, p.name))),
    ),
    h(
      "label",
      {},
      "Storage profile (JSON)",
      h("textarea", { name: "profile" }, JSON.stringify({ type: "s3", bucket: "", region: "us-east-1" }, null, 2)),
    ),
    h(
      "label",
      {},
      "Storage credential (JSON, optional; never shown again)",
      h("textarea", { name: "credential", placeholder: '{"type": "s3-access-key", "access-key-id": "…", "secret-access-key": "…"}' }),
    ),
    h("div", {}, h("button", { type: "submit" }, "Create warehouse")),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      const body = {
        name: data.get("name"),
        "project-id": data.get("project") || undefined,
        "storage-profile": JSON.parse(data.get("profile")),
      };
      const credential = String(data.get("credential") || "").trim();
      if (credential) body["storage-credential"] = JSON.parse(credential);
      const made = await api("POST", mgmt("/warehouses"), body);
      location.hash = `#/wh/${made.id}`;
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  return form;
}

async function warehouseOf(id) {
  return api("GET", mgmt(`/warehouses/${id}`));
}

function warehouseTabs(w, active, ref) {
  const r = ref && ref !== "main" ? `?ref=${encodeURIComponent(ref)}` : "";
  const tab = (key, label, href) => h("a", { href, class: key === active ? "on" : "" }, label);
  return h(
    "div",
    { class: "tabs" },
    tab("browse", "Browse", `#/wh/${w.id}${r}`),
    tab("branches", "Branches & merges", `#/wh/${w.id}/branches`),
    tab("keys", "Access keys", `#/wh/${w.id}/keys`),
    tab("deleted", "Deleted", `#/wh/${w.id}/deleted`),
    tab("tasks", "Tasks", `#/wh/${w.id}/tasks`),
    tab("grants", "Grants", `#/wh/${w.id}/grants`),
  );
}

async function refSelect(w, ref, onChange) {
  const [branches, tags] = await Promise.all([
    api("GET", mgmt(`/warehouses/${w.id}/branches`)),
    api("GET", mgmt(`/warehouses/${w.id}/tags`)).catch(() => ({ refs: [] })),
  ]);
  const select = h(
    "select",
    { id: "ref", onchange: (ev) => onChange(ev.target.value) },
    h("optgroup", { label: "Branches" }, branches.refs.map((b) => h("option", { value: b.name, selected: b.name === ref }, b.name))),
    tags.refs.length
      ? h("optgroup", { label: "Tags" }, tags.refs.map((t) => h("option", { value: t.name, selected: t.name === ref }, t.name)))
      : null,
  );
  return h("label", {}, "Branch or tag", select);
}

async function browse(id, params) {
  const ref = params.get("ref") || "main";
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], [`@${ref}`]);
  const prefix = await catalogPrefix(id, ref);
  const tree = h("ul", { class: "tree", id: "namespaces" });
  const content = h("div", { id: "content" }, h("p", { class: "muted" }, "Pick a namespace."));
  const selected = params.get("ns") ? params.get("ns").split(NS_SEP) : null;

  async function showNamespace(levels) {
    content.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      content.replaceChildren(await namespaceContent(w, ref, prefix, levels));
    } catch (e) {
      content.replaceChildren(errorBox(e));
    }
  }

  async function children(levels, into) {
    let token = "";
    const more = h("li", {});
    const load = async () => {
      const page = await api("GET", `${prefix}/namespaces${q({ parent: levels.length ? levels.join(NS_SEP) : undefined, pageToken: token, pageSize: PAGE })}`);
      for (const ns of page.namespaces) {
        const sub = h("ul", { class: "tree" });
        let open = false;
        const toggle = h("span", { class: "toggle" }, "▸");
        toggle.addEventListener("click", async () => {
          open = !open;
          toggle.textContent = open ? "▾" : "▸";
          sub.replaceChildren();
          if (open) await children(ns, sub);
        });
        const link = h("a", { href: "#", "data-ns": ns.join(".") }, ns[ns.length - 1]);
        link.addEventListener("click", (ev) => {
          ev.preventDefault();
          tree.querySelectorAll("a.sel").forEach((a) => a.classList.remove("sel"));
          link.classList.add("sel");
          history.replaceState(null, "", `#/wh/${id}${q({ ref: ref === "main" ? "" : ref, ns: ns.join(NS_SEP) })}`);
          showNamespace(ns);
        });
        into.insertBefore(h("li", {}, toggle, link, sub), more);
      }
      token = page["next-page-token"] || "";
      more.replaceChildren(token ? h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); load(); } }, "more…") : "");
    };
    into.append(more);
    await load();
    if (!into.querySelector("li a")) more.replaceChildren(h("span", { class: "muted" }, levels.length ? "" : "No namespaces"));
  }

  const select = await refSelect(w, ref, (value) => {
    location.hash = `#/wh/${id}${q({ ref: value === "main" ? "" : value })}`;
  });
  const needle = h("input", { type: "search", id: "search", placeholder: "Search every namespace by name", "aria-label": "Search tables and views" });
  const finder = h("form", { class: "inline", id: "finder" }, needle, h("button", { type: "submit" }, "Search"));
  finder.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!needle.value.trim()) return;
    tree.querySelectorAll("a.sel").forEach((a) => a.classList.remove("sel"));
    content.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    searchResults(w, ref, needle.value.trim()).then(
      (found) => content.replaceChildren(found),
      (e) => content.replaceChildren(errorBox(e)),
    );
  });
  render(
    h("h1", {}, w.name, " ", h("span", { class: "badge" }, `@${ref}`)),
    warehouseTabs(w, "browse", ref),
    h("div", { class: "toolbar" }, h("form", { class: "inline" }, select), finder),
    h("div", { class: "grid" }, h("div", { class: "panel" }, h("strong", {}, "Namespaces"), tree), content),
  );
  await children([], tree);
  if (selected) showNamespace(selected);
}

// The server searches the whole ref (every namespace), a page at a time: nothing here holds
// more than the pages asked for.
async function searchResults(w, ref, text) {
  const body = h("tbody");
  const more = h("div");
  const r = ref !== "main" ? `?ref=${encodeURIComponent(ref)}` : "";
  let token = "";
  const load = async () => {
    const page = await api("GET", mgmt(`/warehouses/${w.id}/search${q({ name: text, ref: ref === "main" ? "" : ref, "page-token": token, "page-size": PAGE })}`));
    for (const t of page.tabulars) {
      const href = `#/wh/${w.id}/${t.type === "view" ? "view" : "table"}/${nsPath(t.namespace)}/${encodeURIComponent(t.name)}${r}`;
      body.append(h("tr", {}, h("td", {}, t.namespace.join(".")), h("td", {}, h("a", { href }, t.name)), h("td", {}, t.type)));
    }
    token = page["next-page-token"] || "";
    more.replaceChildren(token ? h("button", { class: "secondary", onclick: load }, "More results") : "");
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 3, class: "muted" }, "Nothing matches")));
  };
  await load();
  return h(
    "div",
    {},
    h("h2", {}, `Names containing “${text}”`),
    h("table", { id: "search-results" }, h("thead", {}, h("tr", {}, h("th", {}, "Namespace"), h("th", {}, "Name"), h("th", {}, "Kind"))), body),
    more,
  );
}

async function namespaceContent(w, ref, prefix, levels) {
  const search = h("input", { type: "search", placeholder: "Filter loaded names", id: "filter" });
  const body = h("tbody");
  const more = h("div");
  const tokens = { tables: "", views: "" };
  const done = { tables: false, views: false };
  const rowsShown = [];
  const r = ref !== "main" ? `?ref=${encodeURIComponent(ref)}` : "";
  const addRows = (kind, idents) => {
    for (const ident of idents) {
      const href = `#/wh/${w.id}/${kind === "tables" ? "table" : "view"}/${nsPath(ident.namespace)}/${encodeURIComponent(ident.name)}${r}`;
      const row = h("tr", { "data-name": ident.name.toLowerCase() }, h("td", {}, h("a", { href }, ident.name)), h("td", {}, kind === "tables" ? "table" : "view"));
      rowsShown.push(row);
      body.append(row);
    }
  };
  const load = async () => {
    for (const kind of ["tables", "views"]) {
      if (done[kind]) continue;
      const page = await api("GET", `${prefix}/namespaces/${nsPath(levels)}/${kind}${q({ pageToken: tokens[kind], pageSize: PAGE })}`);
      addRows(kind, page.identifiers);
      tokens[kind] = page["next-page-token"] || "";
      done[kind] = !tokens[kind];
    }
    more.replaceChildren(done.tables && done.views ? "" : h("button", { class: "secondary", onclick: load }, "Load more"));
    filter();
  };
  const filter = () => {
    const needle = search.value.toLowerCase();
    for (const row of rowsShown) row.hidden = needle && !row.dataset.name.includes(needle);
  };
  search.addEventListener("input", filter);
  const ns = await api("GET", `${prefix}/namespaces/${nsPath(levels)}`);
  await load();
  return h(
    "div",
    {},
    h("h2", {}, `Namespace ${levels.join(".")}`),
    propertiesTable(ns.properties || {}),
    h("h2", {}, "Tables and views"),
    search,
    h("table", { id: "tabulars" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"))), body),
    more,
    h("h2", {}, "Grants"),
    await grantsPanel("namespace", `${w.id}/${levels.join(NS_SEP)}`),
  );
}

function propertiesTable(props) {
  const entries = Object.entries(props).sort(([a], [b]) => a.localeCompare(b));
  return table(["Property", "Value"], entries.map(([k, v]) => h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, v))));
}

async function tableView(id, ns, name, params) {
  const ref = params.get("ref") || "main";
  const levels = decodeURIComponent(ns).split(NS_SEP);
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}${ref !== "main" ? "?ref=" + encodeURIComponent(ref) : ""}`], [levels.join(".")], [name]);
  const prefix = await catalogPrefix(id, ref);
  const loaded = await api("GET", `${prefix}/namespaces/${nsPath(levels)}/tables/${encodeURIComponent(name)}`);
  const m = loaded.metadata;
  const schema = m.schemas.find((s) => s["schema-id"] === m["current-schema-id"]) || m.schemas[m.schemas.length - 1];
  const byId = new Map();
  const index = (fields) => fields.forEach((f) => { byId.set(f.id, f.name); if (f.type && f.type.type === "struct") index(f.type.fields); });
  index(schema.fields);
  const spec = (m["partition-specs"] || []).find((s) => s["spec-id"] === m["default-spec-id"]);
  const order = (m["sort-orders"] || []).find((s) => s["order-id"] === m["default-sort-order-id"]);
  const snapshots = [...(m.snapshots || [])].sort((a, b) => b["timestamp-ms"] - a["timestamp-ms"]);
  const refsOf = new Map();
  for (const [refName, r] of Object.entries(m.refs || {})) {
    if (!refsOf.has(r["snapshot-id"])) refsOf.set(r["snapshot-id"], []);
    refsOf.get(r["snapshot-id"]).push(refName);
  }
  const current = snapshots.find((s) => s["snapshot-id"] === m["current-snapshot-id"]);
  const summary = (current && current.summary) || {};
  render(
    h("h1", {}, `${levels.join(".")}.${name} `, h("span", { class: "badge" }, `@${ref}`), " ", h("span", { class: "badge" }, `v${m["format-version"]}`)),
    h(
      "p",
      { class: "muted" },
      `UUID ${m["table-uuid"]} · ${m.location} · `,
      `${summary["total-data-files"] || 0} data files, ${summary["total-records"] || 0} records, ${fmtBytes(summary["total-files-size"] || 0)}`,
    ),
    h("h2", {}, "Schema"),
    table(["Id", "Name", "Type", "", "Doc"], fieldRows(schema.fields), { id: "schema" }),
    h("h2", {}, "Partition spec"),
    table(
      ["Field id", "Name", "Transform", "Source"],
      (spec ? spec.fields : []).map((f) => h("tr", {}, h("td", { class: "num" }, f["field-id"]), h("td", {}, f.name), h("td", {}, h("code", {}, f.transform)), h("td", {}, byId.get(f["source-id"]) || f["source-id"]))),
      { id: "partition-spec" },
    ),
    h("h2", {}, "Sort order"),
    table(
      ["Source", "Transform", "Direction", "Nulls"],
      (order ? order.fields : []).map((f) => h("tr", {}, h("td", {}, byId.get(f["source-id"]) || f["source-id"]), h("td", {}, f.transform), h("td", {}, f.direction), h("td", {}, f["null-order"]))),
    ),
    h("h2", {}, "Snapshots"),
    table(
      ["Snapshot", "Time", "Operation", "Added files", "Added records", "Added bytes", "Total records", "Refs"],
      snapshots.map((s) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", {}, s["snapshot-id"])),
          h("td", {}, fmtTime(s["timestamp-ms"])),
          h("td", {}, h("span", { class: `badge ${s.summary.operation}` }, s.summary.operation)),
          h("td", { class: "num" }, s.summary["added-data-files"] || ""),
          h("td", { class: "num" }, s.summary["added-records"] || ""),
          h("td", { class: "num" }, fmtBytes(s.summary["added-files-size"])),
          h("td", { class: "num" }, s.summary["total-records"] || ""),
          h("td", {}, (refsOf.get(s["snapshot-id"]) || []).join(", ")),
        ),
      ),
      { id: "snapshots" },
    ),
    h("h2", {}, "Properties"),
    propertiesTable(m.properties || {}),
    h("h2", {}, "Grants"),
    await grantsPanel("table", `${id}/${m["table-uuid"]}`),
    h("h2", {}, "Metadata log"),
    table(
      ["Time", "File"],
      [...(m["metadata-log"] || [])].reverse().map((e) => h("tr", {}, h("td", {}, fmtTime(e["timestamp-ms"])), h("td", {}, h("code", {}, e["metadata-file"])))),
    ),
  );
}

async function viewView(id, ns, name, params) {
  const ref = params.get("ref") || "main";
  const levels = decodeURIComponent(ns).split(NS_SEP);
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], [levels.join(".")], [name]);
  const prefix = await catalogPrefix(id, ref);
  const loaded = await api("GET", `${prefix}/namespaces/${nsPath(levels)}/views/${encodeURIComponent(name)}`);
  const m = loaded.metadata;
  const versions = [...m.versions].sort((a, b) => b["version-id"] - a["version-id"]);
  const current = versions.find((v) => v["version-id"] === m["current-version-id"]) || versions[0];
  render(
    h("h1", {}, `${levels.join(".")}.${name} `, h("span", { class: "badge" }, "view")),
    h("p", { class: "muted" }, `UUID ${m["view-uuid"]} · ${m.location}`),
    h("h2", {}, "SQL"),
    ...(current.representations || []).map((r) => h("div", {}, h("strong", {}, r.dialect), h("pre", {}, r.sql))),
    h("h2", {}, "Versions"),
    table(
      ["Version", "Time", "Schema", "Dialects"],
      versions.map((v) => h("tr", {}, h("td", { class: "num" }, v["version-id"]), h("td", {}, fmtTime(v["timestamp-ms"])), h("td", { class: "num" }, v["schema-id"]), h("td", {}, (v.representations || []).map((r) => r.dialect).join(", ")))),
    ),
    h("h2", {}, "Properties"),
    propertiesTable(m.properties || {}),
    h("h2", {}, "Grants"),
    await grantsPanel("view", `${id}/${m["view-uuid"]}`),
  );
}

function changeRows(changes) {
  return changes.map((c) =>
    h(
      "tr",
      {},
      h("td", {}, c.kind),
      h("td", {}, [...c.namespace, c.name].filter(Boolean).join(".")),
      h("td", {}, h("span", { class: `badge ${c.change || c.op}` }, c.change || c.op)),
      h("td", {}, h("code", {}, c["from-metadata-location"] || c["metadata-location"] || "")),
      h("td", {}, h("code", {}, c["to-metadata-location"] || "")),
    ),
  );
}

// What changed in a table between two refs: snapshots, schema, spec, sort order, properties.
async function tableChanges(warehouseId, change, from, to) {
  const load = async (ref) => {
    const prefix = await catalogPrefix(warehouseId, ref);
    return (await api("GET", `${prefix}/namespaces/${nsPath(change.namespace)}/tables/${encodeURIComponent(change.name)}`)).metadata;
  };
  const [a, b] = await Promise.all([load(from), load(to)]);
  const ids = (m) => new Map((m.snapshots || []).map((s) => [s["snapshot-id"], s]));
  const before = ids(a);
  const after = ids(b);
  const lines = [];
  for (const [sid, snap] of after)
    if (!before.has(sid)) lines.push(`snapshot ${sid} added (${snap.summary.operation}, ${snap.summary["added-records"] || 0} records, ${snap.summary["added-data-files"] || 0} files)`);
  for (const [sid] of before) if (!after.has(sid)) lines.push(`snapshot ${sid} removed`);
  const fields = (m) => new Set((m.schemas.find((x) => x["schema-id"] === m["current-schema-id"]) || { fields: [] }).fields.map((f) => f.name));
  if (a["current-schema-id"] !== b["current-schema-id"]) {
    const fa = fields(a);
    const fb = fields(b);
    const added = [...fb].filter((f) => !fa.has(f));
    const removed = [...fa].filter((f) => !fb.has(f));
    lines.push(`schema ${a["current-schema-id"]} → ${b["current-schema-id"]}${added.length ? `; columns added: ${added.join(", ")}` : ""}${removed.length ? `; removed: ${removed.join(", ")}` : ""}`);
  }
  if (a["default-spec-id"] !== b["default-spec-id"]) lines.push(`partition spec ${a["default-spec-id"]} → ${b["default-spec-id"]}`);
  if (a["default-sort-order-id"] !== b["default-sort-order-id"]) lines.push(`sort order ${a["default-sort-order-id"]} → ${b["default-sort-order-id"]}`);
  const pa = a.properties || {};
  const pb = b.properties || {};
  for (const k of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
    if (!(k in pa)) lines.push(`property ${k} set to ${pb[k]}`);
    else if (!(k in pb)) lines.push(`property ${k} removed`);
    else if (pa[k] !== pb[k]) lines.push(`property ${k}: ${pa[k]} → ${pb[k]}`);
  }
  if (a.location !== b.location) lines.push(`location ${a.location} → ${b.location}`);
  if (!lines.length) lines.push("no change in snapshots, schema, partitioning, sort order or properties");
  return h("ul", { class: "changes" }, lines.map((l) => h("li", {}, l)));
}

async function branches(id, params) {
  const w = await warehouseOf(id);
  const rights = await may("warehouse", id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], ["Branches"]);
  const [bs, ts] = await Promise.all([
    api("GET", mgmt(`/warehouses/${id}/branches`)),
    api("GET", mgmt(`/warehouses/${id}/tags`)).catch(() => ({ refs: [] })),
  ]);
  const names = [...bs.refs.map((b) => b.name), ...ts.refs.map((t) => t.name)];
  const options = (selected) => names.map((n) => h("option", { value: n, selected: n === selected }, n));
  const refRows = [...bs.refs, ...ts.refs].map((r) =>
    h("tr", {}, h("td", {}, h("a", { href: `#/wh/${id}?ref=${encodeURIComponent(r.name)}` }, r.name)), h("td", {}, r.type), h("td", {}, h("code", {}, r["commit-id"] || "")), h("td", {}, r["catalog-prefix"] || "")),
  );

  // Create a branch or tag.
  const createOut = h("div");
  const create = h(
    "form",
    { class: "inline", id: "create-ref" },
    h("label", {}, "Name", h("input", { name: "name", required: true })),
    h("label", {}, "Kind", h("select", { name: "kind" }, h("option", { value: "branches" }, "branch"), h("option", { value: "tags" }, "tag"))),
    h("label", {}, "From", h("select", { name: "from" }, options("main"))),
    h("button", { type: "submit" }, "Create"),
  );
  create.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(create);
    try {
      await api("POST", mgmt(`/warehouses/${id}/${d.get("kind")}`), { name: d.get("name"), from: d.get("from") });
      route();
    } catch (e) {
      createOut.replaceChildren(errorBox(e));
    }
  });

  // Commit log of a ref.
  const logRef = params.get("log") || "main";
  const log = await api("GET", mgmt(`/warehouses/${id}/commits${q({ ref: logRef, "page-size": 50 })}`));
  const logSelect = h("select", { id: "log-ref", onchange: (ev) => { location.hash = `#/wh/${id}/branches${q({ log: ev.target.value })}`; } }, options(logRef));

  // Diff between two refs.
  const diffOut = h("div", { id: "diff" });
  const diff = h(
    "form",
    { class: "inline", id: "diff-form" },
    h("label", {}, "From", h("select", { name: "from" }, options("main"))),
    h("label", {}, "To", h("select", { name: "to" }, options(names.find((n) => n !== "main") || "main"))),
    h("button", { type: "submit" }, "Diff"),
  );
  diff.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(diff);
    try {
      const result = await api("GET", mgmt(`/warehouses/${id}/diff${q({ from: d.get("from"), to: d.get("to") })}`));
      const rows = changeRows(result.changes);
      result.changes.forEach((c, i) => {
        if (c.kind !== "table" || c.change !== "changed") return;
        const cell = rows[i].lastChild;
        cell.append(" ", h("button", { class: "secondary", onclick: async (click) => {
          click.target.disabled = true;
          try {
            const detail = await tableChanges(id, c, d.get("from"), d.get("to"));
            rows[i].after(h("tr", { class: "detail" }, h("td", { colspan: 5 }, detail)));
          } catch (e) {
            rows[i].after(h("tr", {}, h("td", { colspan: 5 }, errorBox(e))));
          }
        } }, "What changed"));
      });
      diffOut.replaceChildren(table(["Kind", "Name", "Change", "From", "To"], rows, { id: "diff-table" }));
    } catch (e) {
      diffOut.replaceChildren(errorBox(e));
    }
  });

  // Merge.
  const mergeOut = h("div", { id: "merge-result" });
  const merge = h(
    "form",
    { class: "inline", id: "merge-form" },
    h("label", {}, "Source", h("select", { name: "source" }, options(names.find((n) => n !== "main") || "main"))),
    h("label", {}, "Into", h("select", { name: "target" }, bs.refs.map((b) => h("option", { value: b.name, selected: b.name === "main" }, b.name)))),
    h(
      "label",
      {},
      "Strategy",
      h("select", { name: "strategy" }, h("option", { value: "fail" }, "fail on conflicts"), h("option", { value: "source-wins" }, "source wins"), h("option", { value: "target-wins" }, "target wins")),
    ),
    h("button", { type: "submit" }, "Merge"),
  );
  merge.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(merge);
    try {
      const result = await api("POST", mgmt(`/warehouses/${id}/merge`), { source: d.get("source"), target: d.get("target"), strategy: d.get("strategy") });
      mergeOut.replaceChildren(
        h("div", { class: "ok" }, result["commit-id"] ? `Merged as commit ${result["commit-id"]}${result["fast-forward"] ? " (fast-forward)" : ""}` : "Nothing to merge: the target has everything."),
        table(["Kind", "Name", "Change", "Source", "Target before"], changeRows(result.tables)),
      );
    } catch (e) {
      if (e.status === 409 && e.body && e.body.conflicts) {
        mergeOut.replaceChildren(
          errorBox(e),
          table(
            ["Kind", "Name", "Conflict"],
            e.body.conflicts.map((c) => h("tr", {}, h("td", {}, c.kind), h("td", {}, [...c.namespace, c.name].filter(Boolean).join(".")), h("td", {}, c.reason))),
            { id: "conflicts" },
          ),
        );
      } else {
        mergeOut.replaceChildren(errorBox(e));
      }
    }
  });

  render(
    h("h1", {}, `${w.name}: branches and merges`),
    warehouseTabs(w, "branches"),
    table(["Ref", "Kind", "Commit", "Catalog prefix"], refRows, { id: "refs" }),
    h("h2", {}, "Create a branch or tag"),
    gate(create, rights.has("can_manage_branches"), "You may not create branches or tags here."),
    createOut,
    h("h2", {}, "Commit log"),
    h("form", { class: "inline" }, h("label", {}, "Ref", logSelect)),
    table(
      ["Commit", "Time", "Author", "Message", "Changes"],
      log.commits.map((c) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", { title: c.id }, c.id.slice(-12))),
          h("td", {}, c.time.replace("T", " ").replace(/\.\d+Z$/, "Z")),
          h("td", {}, c.author),
          h("td", {}, c.message),
          h("td", {}, c.changes.map((x) => `${x.op} ${[...x.namespace, x.name].filter(Boolean).join(".")}`).join("; ")),
        ),
      ),
      { id: "commits" },
    ),
    h("h2", {}, "Diff"),
    diff,
    diffOut,
    h("h2", {}, "Merge"),
    gate(merge, rights.has("can_merge"), "You may not merge here."),
    mergeOut,
  );
}

async function accessKeys(id) {
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], ["Access keys"]);
  const out = h("div", { id: "new-key" });
  let listing;
  try {
    listing = await api("GET", mgmt(`/warehouses/${id}/access-keys`));
  } catch (e) {
    render(h("h1", {}, `${w.name}: access keys`), warehouseTabs(w, "keys"), errorBox(e));
    return;
  }
  const form = h(
    "form",
    { class: "inline", id: "create-key" },
    h("label", {}, "Description", h("input", { name: "description" })),
    h("label", {}, "Expires in (seconds, optional)", h("input", { name: "expires", type: "number", min: "1" })),
    h("button", { type: "submit" }, "Create key"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    try {
      const key = await api("POST", mgmt(`/warehouses/${id}/access-keys`), {
        description: d.get("description") || null,
        "expires-in-seconds": d.get("expires") ? Number(d.get("expires")) : null,
      });
      out.replaceChildren(
        h("div", { class: "ok" }, "Copy the secret now: it is not shown again."),
        h("div", { class: "secret" }, `access key id: ${key["access-key-id"]}`, h("br"), `secret: ${key["secret-access-key"]}`, h("br"), `endpoint: ${key.endpoint || ""} bucket: ${key.bucket}`),
      );
      const again = await api("GET", mgmt(`/warehouses/${id}/access-keys`));
      body.replaceChildren(...rows(again));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  const body = h("tbody");
  const rows = (l) =>
    l["access-keys"].map((k) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", {}, k["access-key-id"])),
        h("td", {}, k.description || ""),
        h("td", {}, k["created-at"]),
        h("td", {}, k["expires-at"] || "never"),
        h("td", {}, h("button", { class: "secondary", onclick: async () => {
          try {
            await api("DELETE", mgmt(`/warehouses/${id}/access-keys/${encodeURIComponent(k["access-key-id"])}`));
            route();
          } catch (e) {
            out.replaceChildren(errorBox(e));
          }
        } }, "Revoke")),
      ),
    );
  body.replaceChildren(...rows(listing));
  const rights = await may("warehouse", id);
  const manage = rights.has("can_manage_access_keys");
  if (!manage) for (const b of body.querySelectorAll("button")) b.disabled = true;
  render(
    h("h1", {}, `${w.name}: S3 gateway access keys`),
    warehouseTabs(w, "keys"),
    gate(form, manage, "You may not manage this warehouse's keys."),
    out,
    h("table", { id: "keys" }, h("thead", {}, h("tr", {}, ["Key id", "Description", "Created", "Expires", ""].map((x) => h("th", {}, x)))), body),
  );
}

async function deleted(id) {
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], ["Deleted"]);
  const out = h("div");
  const listing = await api("GET", mgmt(`/warehouses/${id}/deleted-tabulars`));
  const items = listing.tabulars;
  const mayUndrop = (await may("warehouse", id)).has("can_undrop");
  render(
    h("h1", {}, `${w.name}: soft-deleted tables and views`),
    warehouseTabs(w, "deleted"),
    out,
    table(
      ["Name", "Kind", "Deleted", "Expires", ""],
      items.map((t) =>
        h(
          "tr",
          {},
          h("td", {}, [...t.namespace, t.name].join(".")),
          h("td", {}, t.type),
          h("td", {}, fmtWhen(t["deleted-at"])),
          h("td", {}, fmtWhen(t["expires-at"])),
          h("td", {}, h("button", { class: "secondary", disabled: !mayUndrop, onclick: async () => {
            try {
              await api("POST", mgmt(`/warehouses/${id}/deleted-tabulars/undrop`), { tabulars: [{ id: t.id }] });
              route();
            } catch (e) {
              out.replaceChildren(errorBox(e));
            }
          } }, "Undrop")),
        ),
      ),
      { id: "deleted" },
    ),
  );
}

async function warehouseGrants(id) {
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], ["Grants"]);
  render(h("h1", {}, `${w.name}: grants`), warehouseTabs(w, "grants"), await grantsPanel("warehouse", id));
}

async function tasks(id) {
  const w = await warehouseOf(id);
  crumbs(["Warehouses", "#/"], [w.name, `#/wh/${id}`], ["Tasks"]);
  const listing = await api("GET", mgmt(`/warehouses/${id}/tasks`));
  const detail = h("div", { id: "task" });
  render(
    h("h1", {}, `${w.name}: tasks`),
    warehouseTabs(w, "tasks"),
    table(
      ["Task", "Queue", "Target", "Status", "Attempts", "Updated", ""],
      listing.tasks.map((t) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", { title: t.id }, t.id.slice(-12))),
          h("td", {}, t.queue),
          h("td", {}, t.target),
          h("td", {}, t.status),
          h("td", { class: "num" }, t.attempts),
          h("td", {}, fmtWhen(t["updated-at"])),
          h("td", {}, h("button", { class: "secondary", onclick: async () => {
            const full = await api("GET", mgmt(`/warehouses/${id}/tasks/${t.id}`));
            detail.replaceChildren(h("h2", {}, `Task ${t.id}`), h("pre", {}, JSON.stringify(full, null, 2)));
          } }, "Attempts")),
        ),
      ),
      { id: "tasks" },
    ),
    detail,
  );
}

// Grants on one object (`server`, `project`, `warehouse`, `namespace`, `table`, `view`, named as
// the grants API names them), and the form to give and take them (disabled for callers who may
// not manage the object's grants).
const GRANTABLE = {
  server: ["admin", "create_project"],
  project: ["ownership", "manage_grants", "create", "modify", "select", "describe"],
  warehouse: ["ownership", "manage_grants", "create", "modify", "select", "describe", "manage_branches", "merge_protected"],
  namespace: ["ownership", "manage_grants", "create", "modify", "select", "describe"],
  table: ["ownership", "manage_grants", "modify", "select", "describe"],
  view: ["ownership", "manage_grants", "modify", "select", "describe"],
};

async function grantsPanel(objectType, objectId) {
  const panel = h("div", { class: "grants", "data-object": `${objectType}/${objectId}` });
  const out = h("div");
  const path = mgmt(`/grants/${objectType}/${encodeURIComponent(objectId)}`);
  const manage = (await may(objectType, objectId)).has("can_manage_grants");
  const body = h("tbody");
  const show = (grants) => {
    body.replaceChildren(
      ...(grants.length
        ? grants.map((g) =>
            h(
              "tr",
              {},
              h("td", {}, g.subject),
              h("td", {}, g.relation),
              h("td", {}, h("button", { class: "secondary revoke", disabled: !manage, onclick: async () => {
                try {
                  show((await api("POST", path, { revoke: [g] })).grants);
                } catch (e) {
                  out.replaceChildren(errorBox(e));
                }
              } }, "Revoke")),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No grants"))]),
    );
  };
  try {
    show((await api("GET", path)).grants);
  } catch (e) {
    panel.append(errorBox(e));
    return panel;
  }
  const form = h(
    "form",
    { class: "inline grant-form" },
    h("label", {}, "Subject", h("input", { name: "subject", required: true, placeholder: "user:idp~alice or role:<id>" })),
    h("label", {}, "Relation", h("select", { name: "relation" }, (GRANTABLE[objectType] || []).map((r) => h("option", { value: r }, r)))),
    h("button", { type: "submit" }, "Grant"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    try {
      show((await api("POST", path, { grant: [{ subject: String(d.get("subject")).trim(), relation: d.get("relation") }] })).grants);
      out.replaceChildren();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  panel.append(
    h("table", { class: "grants-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Subject"), h("th", {}, "Relation"), h("th", {}, ""))), body),
    gate(form, manage, "You may not manage grants here."),
    out,
  );
  return panel;
}

// Users and roles (and the server's grants): what the caller may see of them.
async function access(params) {
  crumbs(["Warehouses", "#/"], ["Access"]);
  const info = await api("GET", mgmt("/info"));
  const serverId = info["server-id"];
  const rights = serverId ? await may("server", serverId) : new Set();
  const users = await api("GET", mgmt(`/users${q({ name: params.get("user") || undefined, pageSize: PAGE })}`)).catch((e) => e);
  const roles = await api("GET", mgmt(`/roles${q({ pageSize: PAGE })}`)).catch((e) => e);
  const out = h("div");
  const roleForm = h(
    "form",
    { class: "inline", id: "create-role" },
    h("label", {}, "Role name", h("input", { name: "name", required: true })),
    h("label", {}, "Description", h("input", { name: "description" })),
    h("button", { type: "submit" }, "Create role"),
  );
  roleForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(roleForm);
    try {
      await api("POST", mgmt("/roles"), { name: d.get("name"), description: d.get("description") || null });
      route();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  const assignees = h("div", { id: "assignees" });
  const showAssignees = async (role) => {
    const path = mgmt(`/roles/${role.id}/assignees`);
    const list = h("ul");
    const fill = (a) => list.replaceChildren(...a.assignees.map((x) => h("li", {}, x, " ", h("button", { class: "secondary", disabled: !rights.has("can_manage_roles"), onclick: async () => fill(await api("POST", path, { remove: [x] })) }, "Remove"))));
    fill(await api("GET", path));
    const add = h("form", { class: "inline", id: "add-assignee" }, h("label", {}, "Add", h("input", { name: "who", required: true, placeholder: "user:idp~alice or role:<id>" })), h("button", { type: "submit" }, "Add"));
    add.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        fill(await api("POST", path, { add: [String(new FormData(add).get("who")).trim()] }));
      } catch (e) {
        assignees.append(errorBox(e));
      }
    });
    assignees.replaceChildren(h("h2", {}, `Assignees of ${role.name}`), h("p", { class: "muted" }, `Grant to this role as role:${role.id}`), list, gate(add, rights.has("can_manage_roles"), "You may not change roles."));
  };
  render(
    h("h1", {}, "Access"),
    h("h2", {}, "Users"),
    users instanceof Error
      ? errorBox(users)
      : table(
          ["User", "Name", "Email", "Kind", "Last seen"],
          users.users.map((u) => h("tr", {}, h("td", {}, h("code", {}, u.id)), h("td", {}, u.name || ""), h("td", {}, u.email || ""), h("td", {}, u.kind), h("td", {}, u["last-seen-at"] || ""))),
          { id: "users" },
        ),
    h("h2", {}, "Roles"),
    roles instanceof Error
      ? errorBox(roles)
      : table(
          ["Role", "Id", "Description", ""],
          roles.roles.map((r) => h("tr", {}, h("td", {}, r.name), h("td", {}, h("code", {}, r.id)), h("td", {}, r.description || ""), h("td", {}, h("button", { class: "secondary", onclick: () => showAssignees(r) }, "Assignees")))),
          { id: "roles" },
        ),
    gate(roleForm, rights.has("can_manage_roles"), "You may not create roles."),
    out,
    assignees,
    h("h2", {}, "Server grants"),
    serverId ? await grantsPanel("server", serverId) : h("p", { class: "muted" }, "The server is not bootstrapped."),
  );
}

// Sign-in: with a provider configured for the console (authorization code flow with PKCE, a
// public client), or by pasting a bearer token. The token is kept in this tab only.

let consoleConfig = null;
async function loadConsoleConfig() {
  if (!consoleConfig) {
    try {
      consoleConfig = await (await fetch("/ui/config.json")).json();
    } catch {
      consoleConfig = { providers: [] };
    }
  }
  return consoleConfig;
}

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomText = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
const redirectUri = () => `${location.origin}/ui/`;

async function discovery(issuer) {
  const response = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`the identity provider's discovery answered ${response.status}`);
  return response.json();
}

async function startSignIn(provider) {
  const d = await discovery(provider.issuer);
  const verifier = randomText(48);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = randomText(16);
  sessionStorage.setItem(
    "floe.pkce",
    JSON.stringify({ verifier, state, provider: provider.id, hash: location.hash, tokenEndpoint: d.token_endpoint }),
  );
  const url = new URL(d.authorization_endpoint);
  const params = {
    response_type: "code",
    client_id: provider["client-id"],
    redirect_uri: redirectUri(),
    scope: provider.scopes.join(" "),
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
  };
  if (provider.resource) params.resource = provider.resource;
  url.search = new URLSearchParams(params).toString();
  location.assign(url.toString());
}

// The provider's answer (`?code=...&state=...` on /ui/), exchanged for a token.
async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  const saved = JSON.parse(sessionStorage.getItem("floe.pkce") || "null");
  sessionStorage.removeItem("floe.pkce");
  history.replaceState(null, "", `/ui/${(saved && saved.hash) || ""}`);
  if (params.has("error")) throw new Error(`Sign-in failed: ${params.get("error_description") || params.get("error")}`);
  if (!saved || params.get("state") !== saved.state) throw new Error("Sign-in failed: the answer does not match the request.");
  const provider = (await loadConsoleConfig()).providers.find((p) => p.id === saved.provider);
  if (!provider) throw new Error("Sign-in failed: unknown provider.");
  const body = {
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: provider["client-id"],
    code_verifier: saved.verifier,
  };
  if (provider.resource) body.resource = provider.resource;
  const response = await fetch(saved.tokenEndpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || !answer.access_token) {
    throw new Error(`Sign-in failed: ${answer.error_description || answer.error || response.status}`);
  }
  session.token = answer.access_token;
  sessionStorage.setItem("floe.token", session.token);
}

function showWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (session.token) {
    who.append(
      "Signed in ",
      h("button", { class: "secondary", id: "sign-out", onclick: () => {
        session.token = null;
        sessionStorage.removeItem("floe.token");
        route();
      } }, "Sign out"),
    );
  }
}

async function signIn(reason) {
  crumbs(["Sign in"]);
  const config = await loadConsoleConfig();
  const out = h("div");
  const buttons = config.providers.map((p) =>
    h("button", { class: "provider", "data-provider": p.id, onclick: () => startSignIn(p).catch((e) => out.replaceChildren(errorBox(e))) }, `Sign in with ${p.id}`),
  );
  const form = h(
    "form",
    { class: "stack", id: "sign-in" },
    h("label", {}, "Or a bearer token (kept in this tab only)", h("textarea", { name: "token", required: true })),
    h("div", {}, h("button", { type: "submit" }, "Use token")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    session.token = String(new FormData(form).get("token")).trim();
    sessionStorage.setItem("floe.token", session.token);
    route();
  });
  render(h("h1", {}, "Sign in"), h("p", {}, reason), h("div", { class: "tabs" }, buttons), out, form);
}

// ---------------------------------------------------------------------------------------------
// Router

const routes = [
  [/^#?\/?$/, () => home()],
  [/^#\/wh\/([^/?]+)$/, (m, p) => browse(m[1], p)],
  [/^#\/wh\/([^/?]+)\/table\/([^/?]+)\/([^/?]+)$/, (m, p) => tableView(m[1], m[2], decodeURIComponent(m[3]), p)],
  [/^#\/wh\/([^/?]+)\/view\/([^/?]+)\/([^/?]+)$/, (m, p) => viewView(m[1], m[2], decodeURIComponent(m[3]), p)],
  [/^#\/wh\/([^/?]+)\/branches$/, (m, p) => branches(m[1], p)],
  [/^#\/wh\/([^/?]+)\/keys$/, (m) => accessKeys(m[1])],
  [/^#\/wh\/([^/?]+)\/deleted$/, (m) => deleted(m[1])],
  [/^#\/wh\/([^/?]+)\/tasks$/, (m) => tasks(m[1])],
  [/^#\/wh\/([^/?]+)\/grants$/, (m) => warehouseGrants(m[1])],
  [/^#\/access$/, (m, p) => access(p)],
  [/^#\/project\/([^/?]+)$/, (m) => projectView(m[1])],
];

async function route() {
  delete document.body.dataset.ready;
  const [path, query] = (location.hash || "#/").split("?");
  const params = new URLSearchParams(query || "");
  for (const [pattern, view] of routes) {
    const m = path.match(pattern);
    if (!m) continue;
    try {
      await view(m, params);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        await signIn("This server needs a signed-in caller.");
      } else {
        render(errorBox(e));
      }
    }
    showWho();
    document.body.dataset.ready = location.hash || "#/";
    return;
  }
  render(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Warehouses")));
}

window.addEventListener("hashchange", route);
finishSignIn()
  .catch((e) => {
    render(errorBox(e));
    throw e;
  })
  .then(route, () => {});
