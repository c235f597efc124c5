import { Suspense } from "react";
import { FinetunePage } from "../../components/FinetunePage";

// the view reads its selection from the URL, which is known only in the browser at build time
export default function Finetune() {
  return (
    <Suspense>
      <FinetunePage />
    </Suspense>
  );
}
