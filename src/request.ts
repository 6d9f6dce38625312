/** Calls to the server extension (miniwdl_jupyter/labext/handlers.py). */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export async function requestAPI<T>(endpoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'miniwdl-jupyter', endpoint);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text for the error below
  }
  if (!response.ok) {
    const message = (data && data.message) || text || response.statusText;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

export function postJSON(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body) };
}
