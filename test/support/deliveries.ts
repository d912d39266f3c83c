import type { SimulatedDevice } from '../../simulator/device.js';

/** Counts, per CommandUUID, how often the server handed the command to one of these devices. */
export function countDeliveries(devices: Iterable<SimulatedDevice>): Map<string, number> {
  const delivered = new Map<string, number>();
  for (const d of devices) {
    const answer = d.answerCommand.bind(d);
    d.answerCommand = async (envelope) => {
      if (typeof envelope.CommandUUID === 'string') delivered.set(envelope.CommandUUID, (delivered.get(envelope.CommandUUID) ?? 0) + 1);
      return answer(envelope);
    };
  }
  return delivered;
}
