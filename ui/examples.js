// An example event per known trigger, to prefill the test panel.

const DATA = {
  'customer.registered': { source: 'landing_page', campaign: 'spring', affiliate_id: 'aff-7' },
  'customer.deposited': { amount: 1500, currency: 'USD', method: 'card', transaction: { id: 'tx-1', type: 'deposit', amount: 1500, currency: 'USD', status: 'approved' } },
  'customer.ftd': { amount: 250, currency: 'EUR', method: 'card', transaction: { id: 'tx-2', type: 'ftd', amount: 250, currency: 'EUR', status: 'approved' } },
  'customer.withdrew': { amount: 800, currency: 'USD', method: 'wire', transaction: { id: 'tx-3', type: 'withdrawal', amount: 800, currency: 'USD', status: 'processed' } },
  'customer.traded': { order: { id: 'o-1', symbol: 'EURUSD', side: 'buy', volume: 1.5, open_price: 1.0842, amount: 10000 } },
  'customer.status_changed': { status_type: 'sales', old_status: 'new', new_status: 'vip' },
  'customer.retention_changed': { status_type: 'retention', old_status: 'active', new_status: 'churning' },
  'call.no_answer': { call: { id: 'call-1', agent_id: 4, direction: 'outbound', duration_seconds: 0, attempt: 2 } },
  'call.completed': { call: { id: 'call-2', agent_id: 4, direction: 'outbound', duration_seconds: 312, attempt: 1 } },
  'task.overdue': { task: { id: 17, type: 'follow_up', title: 'Follow up', due_at: '2026-01-01T09:00:00Z', assignee_id: 4 } },
  'customer.inactive_days': { days: 14 },
};

export function exampleEvent(trigger, customerId = 1) {
  return {
    id: `test-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`,
    type: trigger || 'customer.deposited',
    customer_id: customerId,
    occurred_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    data: structuredClone(DATA[trigger] || {}),
  };
}

export const EXAMPLE_CUSTOMER = {
  id: 1, first_name: 'Ana', last_name: 'Silva', email: 'ana@example.com', country: 'BR', language: 'pt',
  balance: 2500, desk: 'sales', active: true, frozen: false, retention_status: 'churning', sales_status: 'new',
};
