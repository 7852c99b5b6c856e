// 网格地图: the liaison web map served at /map (see gridsvc/webmap.py).
//
// Sign in with a gridsvc account, then draw the liaison's zone(s) over the
// park: the community's zones (GeoJSON), the park's vector tiles, and the
// liaison's own zone map, both refreshed every minute with If-None-Match.
// Everything comes from this origin: no CDN, no basemap, no glyphs, no
// sprite, so the page works in a park without internet.
import * as maplibregl from "../maplibre/maplibre-gl.mjs";

const API = "/api/v1";
const TOKENS_KEY = "gridsvc.map.tokens";
const REFRESH_MS = 60_000;
const FIT_PADDING = 40;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ colours

// The colours are CSS custom properties in map.css, shared with the legend.
function colour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();
}

// Parking by utilisation: green < 0.7, amber < 0.9, red from 0.9, grey when
// unknown (vector tiles drop null properties, so test the type, not null).
function parkingColour() {
  const u = ["get", "utilisation"];
  return ["case",
    ["!=", ["typeof", u], "number"], colour("parking-none"),
    ["<", u, 0.7], colour("parking-low"),
    ["<", u, 0.9], colour("parking-mid"),
    colour("parking-high")];
}

// ------------------------------------------------------------------ tokens and API

// sessionStorage: the sign-in lasts as long as the tab, not the browser.
const tokens = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(TOKENS_KEY)); } catch { return null; }
  },
  set(value) { sessionStorage.setItem(TOKENS_KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(TOKENS_KEY); },
};

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// The API answers errors as application/problem+json: keep title and detail.
async function problemOf(response) {
  try {
    const body = await response.json();
    return { title: body.title, detail: body.detail };
  } catch {
    return { title: response.statusText, detail: `The server answered ${response.status}.` };
  }
}

let renewing = null;

// An expired access token is renewed once with the refresh token; parallel
// callers share the same renewal.
function renewTokens() {
  renewing ??= (async () => {
    const refresh = tokens.get()?.refresh_token;
    if (!refresh) return false;
    const response = await fetch(`${API}/auth/refresh`, {
      method: "POST", headers: { Authorization: `Bearer ${refresh}` }, cache: "no-store",
    });
    if (!response.ok) return false;
    tokens.set(await response.json());
    return true;
  })().finally(() => { renewing = null; });
  return renewing;
}

// fetch with the Bearer token. cache "no-store" keeps the browser's HTTP
// cache out of the way, so a 304 answer to our own If-None-Match reaches us.
async function apiFetch(path, { method = "GET", body, headers = {}, retry = true } = {}) {
  const access = tokens.get()?.access_token;
  const response = await fetch(path, {
    method,
    headers: {
      Accept: "application/json", ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...headers,
      ...(access ? { Authorization: `Bearer ${access}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 401 && retry && await renewTokens()) {
    return apiFetch(path, { method, body, headers, retry: false });
  }
  return response;
}

async function apiJson(path) {
  const response = await apiFetch(path);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

// The park's tiles come through this protocol, fetched here with the token:
// one that expired while the map was drawn (an admin has no zone map whose
// refresh would renew it) is renewed and the tile asked again, instead of
// failing with a 401 and leaving the park blank. Only our own origin gets it.
// A tile that still fails is told to the user (MapLibre would only log it,
// and an admin's whole park, parking to requests, comes from the tiles): a
// session that has ended signs out, anything else shows in the status line.
const TILE_PROTOCOL = "gridsvc-tiles";

// When the park's tiles are asked again (the minute's refresh, a request
// acted on), each is revalidated with the server (If-None-Match: a 304 when
// nothing changed). The browser's own copy (max-age 60) answered them before,
// so a resolved request, or a lot's new count, stayed drawn. Until the map has
// drawn them (at most a few seconds: a map signed out meanwhile never does),
// so that tiles asked for by panning later come from the browser's copies.
const REVALIDATE_MS = 5_000;
let revalidateTilesUntil = 0;

maplibregl.addProtocol(TILE_PROTOCOL, async (params, abortController) => {
  const url = `${location.origin}/tiles/${params.url.slice(TILE_PROTOCOL.length + 3)}`;
  const get = () => {
    const access = tokens.get()?.access_token;
    return fetch(url, {
      headers: access ? { Authorization: `Bearer ${access}` } : {}, signal: abortController.signal,
      cache: Date.now() < revalidateTilesUntil ? "no-cache" : "default",
    });
  };
  let response;
  try {
    response = await get();
    if (response.status === 401 && await renewTokens()) response = await get();
  } catch (error) {
    if (!abortController.signal.aborted) tileFailed(null, "cannot reach the server 无法连接服务器");
    throw error;
  }
  if (response.status === 204) return { data: new ArrayBuffer(0) };  // nothing in this tile
  if (!response.ok) {
    const problem = await problemOf(response);
    tileFailed(response.status, problem.detail || problem.title);
    throw new Error(`tile ${url}: HTTP ${response.status}`);
  }
  return { data: await response.arrayBuffer() };
});

// ------------------------------------------------------------------ geometry

function polygonsOf(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

function ringArea(ring) {
  let twice = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    twice += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
  }
  return twice / 2;
}

function ringCentroid(ring) {
  let x = 0, y = 0, twice = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const cross = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
    x += (ring[j][0] + ring[i][0]) * cross;
    y += (ring[j][1] + ring[i][1]) * cross;
    twice += cross;
  }
  if (twice === 0) return ring[0];
  return [x / (3 * twice), y / (3 * twice)];
}

// Even-odd ray casting over all rings, so holes count as outside.
function insidePolygon([x, y], rings) {
  let inside = false;
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < xi + ((y - yi) * (xj - xi)) / (yj - yi)) inside = !inside;
    }
  }
  return inside;
}

// The middle of the widest inside stretch of the horizontal line at y.
function widestSpanMidpoint(rings, y) {
  const xs = [];
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y)) xs.push(xi + ((y - yi) * (xj - xi)) / (yj - yi));
    }
  }
  xs.sort((a, b) => a - b);
  let best = null;
  for (let k = 0; k + 1 < xs.length; k += 2) {
    if (!best || xs[k + 1] - xs[k] > best[1] - best[0]) best = [xs[k], xs[k + 1]];
  }
  return best ? [(best[0] + best[1]) / 2, y] : null;
}

// Where a zone's code goes: the server's label_point when it sends one, else
// the centroid of the largest part, moved inside when the shape is concave
// (a poor man's polylabel, good enough for a label).
function labelPoint(feature) {
  const given = feature.properties?.label_point;
  if (given) return given.coordinates ?? given;
  const polygons = polygonsOf(feature.geometry);
  if (!polygons.length) return null;
  const largest = polygons.reduce((a, b) => (Math.abs(ringArea(b[0])) > Math.abs(ringArea(a[0])) ? b : a));
  const centroid = ringCentroid(largest[0]);
  if (insidePolygon(centroid, largest)) return centroid;
  return widestSpanMidpoint(largest, centroid[1]) ?? centroid;
}

// Room around the fitted zones, more on the right where the legend sits
// (but never more than a third of a narrow screen).
function fitPadding() {
  const legend = $("legend").offsetWidth, width = $("map").clientWidth;
  return { top: FIT_PADDING, bottom: FIT_PADDING, left: FIT_PADDING, right: FIT_PADDING + Math.min(legend, width / 3) };
}

function boundsOf(features) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const feature of features) {
    for (const polygon of polygonsOf(feature.geometry)) {
      for (const [x, y] of polygon[0]) {
        minX = Math.min(minX, x); minY = Math.min(minY, y);
        maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
      }
    }
  }
  return minX === Infinity ? null : [[minX, minY], [maxX, maxY]];
}

// ------------------------------------------------------------------ the style

// A plain background: no basemap, no glyphs, no sprite, no remote URL.
function baseStyle() {
  return {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": colour("background") } }],
  };
}

const POLYGON = ["match", ["geometry-type"], ["Polygon", "MultiPolygon"], true, false];
const POINT = ["match", ["geometry-type"], ["Point", "MultiPoint"], true, false];

// The layers drawing one kind of thing (enterprise, parking, volunteer,
// request), from the park's tiles or from the liaison's zone map.
function kindLayers(prefix, source, kind, where) {
  const at = (extra) => ({ source, ...where, filter: ["all", ...(where.filter ? [where.filter] : []), extra] });
  const circle = (fill) => ({
    type: "circle", ...at(POINT),
    paint: { "circle-radius": 6, "circle-color": fill, "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.5 },
  });
  switch (kind) {
    case "enterprise":
      return [
        { id: `${prefix}-enterprise-fill`, type: "fill", ...at(POLYGON), paint: { "fill-color": colour("enterprise"), "fill-opacity": 0.8 } },
        { id: `${prefix}-enterprise-line`, type: "line", ...at(POLYGON), paint: { "line-color": colour("enterprise-line"), "line-width": 1 } },
        { id: `${prefix}-enterprise-point`, ...circle(colour("enterprise-line")) },
      ];
    case "parking":
      return [
        { id: `${prefix}-parking-fill`, type: "fill", ...at(POLYGON), paint: { "fill-color": parkingColour() } },
        { id: `${prefix}-parking-line`, type: "line", ...at(POLYGON), paint: { "line-color": colour("parking-line"), "line-width": 1 } },
        { id: `${prefix}-parking-point`, ...circle(parkingColour()) },
      ];
    case "volunteer":
      return [{ id: `${prefix}-volunteer`, ...circle(colour("volunteer")) }];
    case "request":
      return [{ id: `${prefix}-request`, ...circle(colour("request")) }];
    default:
      return [];
  }
}

// The rest of the park, from /tiles (requests and volunteers are only in
// the tiles of callers who may see them).
function parkLayers() {
  const fromTiles = (sourceLayer) => ({ "source-layer": sourceLayer });
  return [
    { id: "park-zones-line", type: "line", source: "park", "source-layer": "zones",
      paint: { "line-color": colour("zone-line"), "line-width": 1 } },
    ...kindLayers("park", "park", "enterprise", fromTiles("enterprises")),
    ...kindLayers("park", "park", "parking", fromTiles("parking")),
    ...kindLayers("park", "park", "request", fromTiles("requests")),
    ...kindLayers("park", "park", "volunteer", fromTiles("volunteers")),
  ];
}

// The liaison's own zone map: one FeatureCollection, split by properties.layer.
function zoneMapLayers() {
  const ofLayer = (name) => ({ filter: ["==", ["get", "layer"], name] });
  return [
    ...kindLayers("own", "zone-map", "enterprise", ofLayer("enterprise")),
    ...kindLayers("own", "zone-map", "parking", ofLayer("parking")),
    { id: "own-zone-line", type: "line", source: "zone-map", filter: ["==", ["get", "layer"], "zone"],
      paint: { "line-color": colour("own-zone-line"), "line-width": 3 } },
    // Only volunteers on duty and requests still open, when the server says so.
    ...kindLayers("own", "zone-map", "volunteer",
      { filter: ["all", ["==", ["get", "layer"], "volunteer"], ["!=", ["get", "on_duty"], false]] }),
    ...kindLayers("own", "zone-map", "request",
      { filter: ["all", ["==", ["get", "layer"], "request"],
        ["!", ["in", ["get", "status"], ["literal", ["resolved", "closed"]]]]] }),
  ];
}

// The community's zones: the liaison's own ones opaque and green.
function zoneLayers(ownIds) {
  const own = ["in", ["coalesce", ["get", "id"], ["id"]], ["literal", ownIds]];
  return {
    fill: { id: "zones-fill", type: "fill", source: "zones", paint: {
      "fill-color": ["case", own, colour("own-zone"), colour("zone")],
      "fill-opacity": ["case", own, 1, 0.55],
    } },
    line: { id: "zones-line", type: "line", source: "zones", paint: {
      "line-color": ["case", own, colour("own-zone-line"), colour("zone-line")],
      "line-width": ["case", own, 2, 1],
    } },
  };
}

// ------------------------------------------------------------------ the zone map (ETag)

// GET /zones/{id}/map for each of the liaison's zones, remembering the ETag
// so that a refresh that changed nothing costs a 304 and no redraw.
class ZoneMaps {
  constructor(zones) {
    this.entries = new Map(zones.map((zone) => [zone.id, { code: zone.code ?? String(zone.id), etag: null, features: [], onDuty: 0 }]));
    this.failure = null;
  }

  // True when any zone's data changed. Every zone is asked even when one
  // fails (a liaison's other zones must still show, and a zone that changed
  // must be drawn: its new ETag is kept, so it would answer 304 from now on);
  // the first failure is kept in this.failure. An ended session (401) throws.
  async refresh() {
    let changed = false;
    this.failure = null;
    for (const [id, entry] of this.entries) {
      try {
        const headers = entry.etag ? { "If-None-Match": entry.etag } : {};
        const response = await apiFetch(`${API}/zones/${id}/map`, { headers });
        if (response.status === 304) continue;
        if (!response.ok) throw new ApiError(response.status, await problemOf(response));
        const body = await response.json();
        entry.etag = response.headers.get("ETag");
        entry.features = body.features ?? [];
        entry.onDuty = body.volunteers_on_duty ?? 0; // a count even when positions are not shown
        changed = true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) throw error;
        console.warn(`zone map ${entry.code}:`, error);
        this.failure ??= new Error(`${entry.code}: ${error.message}`);
      }
    }
    return changed;
  }

  onDuty() {
    return [...this.entries.values()].reduce((sum, entry) => sum + entry.onDuty, 0);
  }

  collection() {
    const features = [...this.entries.values()].flatMap((entry) => entry.features);
    return { type: "FeatureCollection", features };
  }
}

// ------------------------------------------------------------------ popups

const KIND_NAMES = {
  zone: "网格 Zone", enterprise: "企业 Enterprise", parking: "停车场 Parking",
  volunteer: "志愿者 Volunteer", request: "诉求 Request",
};

function kindOf(feature) {
  if (feature.properties.layer) return feature.properties.layer;
  const id = feature.layer.id;
  return Object.keys(KIND_NAMES).find((kind) => id.includes(kind)) ?? "zone";
}

function formatValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (key === "utilisation" && typeof value === "number") return `${Math.round(value * 100)} %`;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Built with textContent only: names come from users and must never be HTML.
function featureCard(feature) {
  const p = feature.properties;
  const card = element("div", "feature-card");
  card.append(element("h3", null, String(p.name ?? p.code ?? p.ref ?? p.title ?? p.id ?? "")));
  card.append(element("p", "kind", KIND_NAMES[kindOf(feature)] ?? kindOf(feature)));
  const list = element("dl");
  for (const [key, value] of Object.entries(p)) {
    const shown = element("dd", null, formatValue(key, value));
    shown.dataset.key = key;
    list.append(element("dt", null, key), shown);
  }
  card.append(list);
  if (kindOf(feature) === "request" && Number.isInteger(p.id)) card.append(requestActions(p.id, p.status, card));
  return card;
}

// ------------------------------------------------------------------ acting on a request

// The actions the popup offers (not reassign: it needs a volunteer picked).
// The statuses each is possible from are the service's own rules, sent with
// the page (body[data-request-actions]). Whether this account may take one
// is the API's to say: its 403 or 409 is shown in the card as it is worded.
const ACTION_LABELS = {
  claim: "认领 Claim", start: "开始处理 Start", resolve: "办结 Resolve", escalate: "上报 Escalate",
  withdraw: "撤销 Withdraw", comment: "留言 Comment",
};

function possibleActions(status) {
  const from = JSON.parse(document.body.dataset.requestActions || "{}");
  return Object.keys(ACTION_LABELS).filter((action) => (from[action] ?? []).includes(status));
}

function requestActions(requestId, status, card) {
  const box = element("form", "request-actions");
  const note = element("input");
  Object.assign(note, { name: "note", maxLength: 500, placeholder: "备注 Note" });
  note.setAttribute("aria-label", "Note");
  const buttons = element("div", "buttons");
  const outcome = element("p", "outcome");
  outcome.setAttribute("role", "status");
  box.append(note, buttons, outcome);
  box.addEventListener("submit", (event) => event.preventDefault());

  let current = status;
  const showStatus = (value) => {
    current = value;
    const shown = card.querySelector('dd[data-key="status"]');
    if (shown) shown.textContent = value;
  };
  const render = () => {
    buttons.replaceChildren(...possibleActions(current).map((action) => {
      const button = element("button", null, ACTION_LABELS[action]);
      Object.assign(button, { type: "button", value: action });
      button.addEventListener("click", () => act(action));
      return button;
    }));
  };
  const act = async (action) => {
    const text = note.value.trim();
    if (action === "comment" && !text) {
      outcome.textContent = "写下留言 Write the comment in the note first.";
      return;
    }
    buttons.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    outcome.textContent = "…";
    try {
      const response = await apiFetch(`${API}/requests/${requestId}/${action}`, {
        method: "POST", body: text ? { note: text } : {},
      });
      if (!response.ok) throw new ApiError(response.status, await problemOf(response));
      const request = await response.json();
      note.value = "";
      outcome.textContent = `✓ ${ACTION_LABELS[action]}: ${request.status}`;
      showStatus(request.status);
      render();
      requestChanged();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { failed(error); return; }
      outcome.textContent = `✗ ${error.message}`;
      if (error instanceof ApiError && error.status === 409) await reread();  // it moved on meanwhile
      render();
    }
  };
  const reread = async () => {
    try {
      showStatus((await apiJson(`${API}/requests/${requestId}`)).status);
      requestChanged();
    } catch (error) {
      console.warn(`request ${requestId}:`, error);
    }
  };
  render();
  return box;
}

// A request acted on: the zone maps and the park's tiles are asked again at
// once (a resolved request leaves the map), not at the next minute's refresh.
function requestChanged() {
  refreshZoneMap().catch(failed);
}

// The park's tiles in view, asked again of the server (see revalidateTilesUntil).
function reloadParkTiles() {
  const park = view.map?.getSource("park");
  if (!park) return;
  revalidateTilesUntil = Date.now() + REVALIDATE_MS;
  view.map.once("idle", () => { revalidateTilesUntil = 0; });
  park.setTiles([`${TILE_PROTOCOL}://{z}/{x}/{y}.pbf`]);
}

// ------------------------------------------------------------------ the page

const view = { map: null, markers: [], timer: null, zoneMaps: null };

function setState(state) { document.body.dataset.mapState = state; }

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  const box = $("sign-in-error");
  box.textContent = message ?? "";
  box.hidden = !message;
}

function showSignedIn(me) {
  $("who").textContent = `${me.display_name || me.username} (${me.roles.join(", ")})`;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("refresh").hidden = me.zones.length === 0;
  $("legend").hidden = false;
}

function clearView() {
  clearInterval(view.timer);
  view.markers.forEach((marker) => marker.remove());
  view.map?.remove();
  Object.assign(view, { map: null, markers: [], timer: null, zoneMaps: null });
  delete window.gridMap;
}

// Sign out of this page only: /auth/logout would end every session of the
// account (phones included), which is not what closing the map means.
function signOut(message) {
  clearView();
  tokens.clear();
  $("who").textContent = "";
  $("on-duty").textContent = "";
  setStatus("");
  $("sign-out").hidden = true;
  $("refresh").hidden = true;
  $("legend").hidden = true;
  $("sign-in").hidden = false;
  showError(message);
  setState("signed-out");
  $("username").focus();
}

// A liaison's community is the one their zones are in, asked for by its id:
// looked for in the first page of the list, a park past the 100th was not
// there and the liaison was shown the first park instead of theirs. An admin
// (or anyone without zones) gets the first community.
async function communityFor(me) {
  const wanted = me.zones.find((zone) => zone.community_id)?.community_id;
  if (wanted !== undefined) return apiJson(`${API}/communities/${wanted}`);
  const page = await apiJson(`${API}/communities?limit=1`);
  const community = (Array.isArray(page) ? page : page.items ?? [])[0];
  if (!community) throw new Error("No community has been set up yet.");
  return community;
}

function addZoneLabels(map, zones, ownIds) {
  return zones.features.flatMap((feature) => {
    const at = labelPoint(feature);
    if (!at) return [];
    const code = String(feature.properties.code ?? "");
    const label = element("div", ownIds.includes(feature.properties.id ?? feature.id) ? "zone-label own" : "zone-label", code);
    label.dataset.zoneCode = code;
    label.title = feature.properties.name ?? code;
    return [new maplibregl.Marker({ element: label }).setLngLat(at).addTo(map)];
  });
}

function showFeature(event) {
  const map = view.map;
  const layers = map.getStyle().layers.map((layer) => layer.id).filter((id) => id !== "background");
  const [feature] = map.queryRenderedFeatures(event.point, { layers });
  if (!feature) return;
  new maplibregl.Popup({ maxWidth: "22rem" }).setLngLat(event.lngLat).setDOMContent(featureCard(feature)).addTo(map);
}

function showOnDuty() {
  const zoneMaps = view.zoneMaps;
  $("on-duty").textContent = zoneMaps?.entries.size ? `在岗志愿者 ${zoneMaps.onDuty()} volunteers on duty` : "";
}

function zoneDataFailed(error) {
  setStatus(`网格数据出错 Zone data ${error.message}`);
}

// A tile that failed (see the tile protocol): an ended session signs out,
// anything else is said in the status line. Only while a map is shown.
function tileFailed(status, message) {
  if (!view.map) return;
  if (status === 401) {
    setTimeout(() => view.map && failed(new ApiError(401, { detail: message })));
    return;
  }
  setStatus(`地图图块出错 Map tiles: ${message}${status ? ` (HTTP ${status})` : ""}`);
}

async function refreshZoneMap() {
  if (!view.zoneMaps || !view.map) return;
  reloadParkTiles();
  const changed = await view.zoneMaps.refresh();
  if (changed) view.map.getSource("zone-map")?.setData(view.zoneMaps.collection());
  const time = new Date().toLocaleTimeString();
  if (view.zoneMaps.failure) zoneDataFailed(view.zoneMaps.failure);
  else setStatus(changed ? `更新 Updated ${time}` : `已检查 Checked ${time}, no change`);
  showOnDuty();
}

function addData(map, zones, ownIds, zoneMaps) {
  const layers = zoneLayers(ownIds);
  map.addSource("zones", { type: "geojson", data: zones });
  map.addSource("park", {
    type: "vector", tiles: [`${TILE_PROTOCOL}://{z}/{x}/{y}.pbf`], minzoom: 10, maxzoom: 18,
  });
  map.addSource("zone-map", { type: "geojson", data: zoneMaps.collection() });
  map.addLayer(layers.fill);
  parkLayers().forEach((layer) => map.addLayer(layer));
  zoneMapLayers().forEach((layer) => map.addLayer(layer));
  map.addLayer(layers.line);
}

async function openMap() {
  setState("loading");
  const me = await apiJson(`${API}/me`);
  showSignedIn(me);
  const community = await communityFor(me);
  const zones = await apiJson(`${API}/communities/${community.id}/zones`);
  const ownIds = me.zones.map((zone) => zone.id);
  const own = zones.features.filter((f) => ownIds.includes(f.properties.id ?? f.id));
  const bounds = boundsOf(own.length ? own : zones.features) ?? boundsOf([{ geometry: community.boundary }]);

  const zoneMaps = new ZoneMaps(me.zones);
  const map = new maplibregl.Map({
    container: "map", style: baseStyle(), bounds, fitBoundsOptions: { padding: fitPadding() },
    attributionControl: false,
  });
  Object.assign(view, { map, zoneMaps });
  window.gridMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.addControl(new maplibregl.ScaleControl());
  map.on("error", (event) => console.warn("map:", event.error?.message ?? event));
  map.on("click", showFeature);

  // A zone map failing (say, a zone just deleted) must not hide the rest.
  const zoneMapLoaded = zoneMaps.refresh().then(() => {
    if (zoneMaps.failure) zoneDataFailed(zoneMaps.failure);
  });
  await Promise.all([map.once("load"), zoneMapLoaded]);
  if (view.map !== map) return; // signed out while loading
  addData(map, zones, ownIds, zoneMaps);
  view.markers = addZoneLabels(map, zones, ownIds);
  if (!$("status").textContent) setStatus(`更新 Updated ${new Date().toLocaleTimeString()}`);
  showOnDuty();
  map.once("idle", () => setState("idle"));
  view.timer = setInterval(() => refreshZoneMap().catch(failed), REFRESH_MS);
}

// Signed-out (401) ends the session; anything else is shown and kept.
function failed(error) {
  console.error(error);
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your sign-in has expired; please sign in again. 登录已过期。");
  } else if (view.map) {
    setStatus(`出错 Error: ${error.message}`);
  } else {
    signOut(error.message);
  }
}

// POST the form to /auth/token; on failure show the problem's detail.
async function requestTokens(username, password) {
  let response;
  try {
    response = await fetch(`${API}/auth/token`, {
      method: "POST", cache: "no-store",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    showError("Cannot reach the server. 无法连接服务器。");
    return false;
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    showError(problem.detail || problem.title);
    return false;
  }
  tokens.set(await response.json());
  return true;
}

async function signIn(event) {
  event.preventDefault();
  showError(null);
  const form = event.currentTarget;
  const button = $("sign-in-button");
  button.disabled = true;
  try {
    if (await requestTokens(form.username.value.trim(), form.password.value)) {
      form.reset();
      await openMap();
    }
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
}

function start() {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", () => refreshZoneMap().catch(failed));
  // Reloading the tab keeps the sign-in (sessionStorage).
  if (tokens.get()) openMap().catch(failed);
}

start();
