// The 3D scene (/scene): CesiumJS over this server's terrain, imagery (time switch), 3D Tiles
// buildings and draped vector layers. Every request goes to this server; none to Cesium ion.
"use strict";

const config = JSON.parse(document.getElementById("scene-config").textContent);
const pageKey = config.session ? null : new URLSearchParams(location.search).get("api_key");
const keyParams = pageKey ? { api_key: pageKey } : {};

function resource(url) {
  return new Cesium.Resource({ url, queryParameters: keyParams });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function imageryLayer(info, item) {
  const key = pageKey ? `&api_key=${encodeURIComponent(pageKey)}` : "";
  const [w, s, e, n] = info.bounds;
  return new Cesium.ImageryLayer(new Cesium.UrlTemplateImageryProvider({
    url: `${config.base}/collections/${info.id}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=jpeg&item=${encodeURIComponent(item)}${key}`,
    tilingScheme: new Cesium.WebMercatorTilingScheme(),
    rectangle: Cesium.Rectangle.fromDegrees(w, s, e, n),
    minimumLevel: info.minzoom,
    maximumLevel: info.maxzoom,
    credit: info.title,
  }));
}

function showProperties(title, properties) {
  const panel = document.getElementById("feature");
  panel.classList.remove("muted");
  panel.replaceChildren(el("h3", { text: title }));
  const table = el("table");
  for (const [k, v] of Object.entries(properties)) {
    table.append(el("tr", {}, el("th", { text: k }), el("td", { text: v == null ? "" : String(v) })));
  }
  panel.append(table);
  const code = properties.unit_code;
  if (code) {
    const key = pageKey ? `&api_key=${encodeURIComponent(pageKey)}` : "";
    panel.append(el("p", {}, el("a", {
      class: "profile", target: "_blank", href: `${config.base}/codes/${encodeURIComponent(code)}?f=html${key}`,
      text: `一码全息 Unit-code profile ${code}`,
    })));
  }
  window.__scene.picked = { title, properties };
}

// What is under the cursor: a building of a 3D tileset before a feature draped on the ground under it.
function pick(viewer, position) {
  const found = viewer.scene.drillPick(position, 8);
  const picked = found.find((p) => p instanceof Cesium.Cesium3DTileFeature) || found[0];
  if (picked instanceof Cesium.Cesium3DTileFeature) {
    const props = {};
    for (const id of picked.getPropertyIds()) props[id] = picked.getProperty(id);
    showProperties(picked.tileset.onemapTitle || "3D", props);
  } else if (picked && picked.id instanceof Cesium.Entity && picked.id.properties) {
    const entity = picked.id;
    showProperties(entity.onemapTitle || "", entity.properties.getValue(Cesium.JulianDate.now()));
  }
}

async function drape(viewer, sources) {
  const rect = viewer.camera.computeViewRectangle();
  const height = viewer.camera.positionCartographic.height;
  if (!rect || height > 20000) return;  // draped features only close enough to read them
  const bbox = [rect.west, rect.south, rect.east, rect.north].map((r) => Cesium.Math.toDegrees(r).toFixed(6));
  for (const layer of config.draped) {
    const url = `${config.base}/collections/${layer.id}/items?bbox=${bbox.join(",")}&limit=500`;
    const headers = pageKey ? { "X-API-Key": pageKey, Accept: "application/geo+json" } : { Accept: "application/geo+json" };
    const body = await (await fetch(url, { headers })).json();
    const source = await Cesium.GeoJsonDataSource.load(body, {
      clampToGround: true, fill: Cesium.Color.fromCssColorString("#e6a23c").withAlpha(0.25),
      stroke: Cesium.Color.fromCssColorString("#b06b00"),
    });
    for (const entity of source.entities.values) entity.onemapTitle = layer.title;
    if (sources[layer.id]) viewer.dataSources.remove(sources[layer.id], true);
    sources[layer.id] = source;
    await viewer.dataSources.add(source);
  }
}

async function start() {
  const viewer = new Cesium.Viewer("scene", {
    baseLayer: false, baseLayerPicker: false, geocoder: false, homeButton: false, sceneModePicker: false,
    navigationHelpButton: false, animation: false, timeline: false, fullscreenButton: false,
    infoBox: false, selectionIndicator: false,
    terrainProvider: config.terrain
      ? await Cesium.CesiumTerrainProvider.fromUrl(resource(config.terrain), { requestVertexNormals: true })
      : new Cesium.EllipsoidTerrainProvider(),
  });
  viewer.scene.globe.enableLighting = true;
  viewer.scene.globe.depthTestAgainstTerrain = true;
  window.__scene = { viewer, tilesets: [], imagery: {}, picked: null };

  const select = document.getElementById("imagery-time");
  for (const info of config.imagery) {
    if (!info.items.length) continue;
    window.__scene.imagery[info.id] = viewer.imageryLayers.add(imageryLayer(info, info.items[0].id));
    for (const item of info.items) select.append(el("option", { value: `${info.id}|${item.id}`, text: `${info.title} ${item.datetime.slice(0, 10)}` }));
  }
  if (select.options.length) document.getElementById("time-switch").hidden = false;
  select.addEventListener("change", () => {
    const [id, item] = select.value.split("|");
    const info = config.imagery.find((i) => i.id === id);
    viewer.imageryLayers.remove(window.__scene.imagery[id], true);
    window.__scene.imagery[id] = viewer.imageryLayers.add(imageryLayer(info, item), 0);
  });

  for (const info of config.tilesets) {
    const tileset = await Cesium.Cesium3DTileset.fromUrl(resource(info.url));
    tileset.onemapTitle = info.title;
    viewer.scene.primitives.add(tileset);
    window.__scene.tilesets.push(tileset);
  }
  if (config.bounds.length) {
    const [w, s, e, n] = config.bounds;
    viewer.camera.setView({ destination: Cesium.Rectangle.fromDegrees(w, s, e, n) });
  }
  const sources = {};
  viewer.camera.moveEnd.addEventListener(() => drape(viewer, sources).catch((err) => console.error(err)));
  new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas).setInputAction(
    (click) => pick(viewer, click.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);
  window.__scene.ready = true;
}

start().catch((err) => { console.error(err); window.__scene = { error: String(err) }; });
